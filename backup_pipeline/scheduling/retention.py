"""Retention: each schedule keeps its newest `retention_count` completed backups.

What counts: only the schedule's own `scheduled` backups that are `completed` and whose archive
is on disk, newest first. Never deleted: manual, uploaded and safety backups, failed or running
backups, a backup a running restore uses, and anything among the kept ones (so a schedule's
newest completed backup always stays). A completed backup whose archive is missing neither
counts nor is touched; it is reported, like a file in BACKUP_DIR that no row names.

Each deletion is its own transaction that first re-checks, under row locks, that the backups
kept instead still exist and that no restore uses the one to delete; only then are the row and
the file removed together.
"""

from __future__ import annotations

import errno
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from psycopg.rows import dict_row

from backup_pipeline.backup.inventory import archive_path
from backup_pipeline.catalog.history import _jsonable, check_migrated
from backup_pipeline.offsite import cleanup as offsite
from backup_pipeline.postgres import connect, one_line
from backup_pipeline.restore.runs import restores_using
from backup_pipeline.scheduling import slots
from backup_pipeline.settings import Settings

IN_USE = "in use by a running restore"
_ROW = "id, backup_type, status, schedule_id, file_name, started_at, completed_at, size_bytes"


@dataclass
class SchedulePlan:
    schedule_id: str
    name: str
    retention_count: int
    keep: list[dict[str, Any]] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    protected: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RetentionReport:
    schedules: list[SchedulePlan] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    missing_files: list[dict[str, Any]] = field(default_factory=list)
    unknown_files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pruned_slot_claims: int = 0
    dry_run: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "schedules": len(self.schedules),
            "deleted": len(self.deleted),
            "deleted_bytes": sum(d.get("size_bytes") or 0 for d in self.deleted),
            "kept": sum(len(s.keep) for s in self.schedules),
            "protected_by_restore": sum(len(s.protected) for s in self.schedules),
            "missing_files": len(self.missing_files),
            "unknown_files": len(self.unknown_files),
            "errors": len(self.errors),
            "pruned_slot_claims": self.pruned_slot_claims,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "backup_type", "status", "file_name", "started_at",
                                "size_bytes") if k in row}


def _file_present(settings: Settings, row: dict[str, Any]) -> bool:
    path = archive_path(settings, row)
    return bool(path and path.is_file())


def plan(settings: Settings, schedule_id: str | None = None) -> list[SchedulePlan]:
    """What retention would keep and delete, per schedule (one schedule or all)."""
    plans = []
    with connect(settings.database_url) as conn:
        check_migrated(conn)
        cur = conn.cursor(row_factory=dict_row)
        schedules = cur.execute(
            "SELECT id::text AS id, name, retention_count FROM backup.backup_schedules"
            " WHERE %(id)s::uuid IS NULL OR id = %(id)s::uuid ORDER BY name, id",
            {"id": schedule_id},
        ).fetchall()
        for schedule in schedules:
            rows = cur.execute(
                f"SELECT {_ROW} FROM backup.backup_history WHERE schedule_id = %s"
                " AND backup_type = 'scheduled' AND status = 'completed'"
                " ORDER BY started_at DESC, id DESC", (schedule["id"],),
            ).fetchall()
            p = SchedulePlan(schedule["id"], schedule["name"], schedule["retention_count"])
            for row in map(_jsonable, rows):
                if not _file_present(settings, row):
                    p.missing.append(_brief(row))
                elif len(p.keep) < p.retention_count:
                    p.keep.append(_brief(row))
                else:
                    p.delete.append(_brief(row))
            in_use = restores_using(conn, [r["id"] for r in p.delete])
            p.protected = [r for r in p.delete if r["id"] in in_use]
            p.delete = [r for r in p.delete if r["id"] not in in_use]
            plans.append(p)
    return plans


def _delete_one(settings: Settings, p: SchedulePlan, victim: dict[str, Any]) -> str | None:
    """Delete one backup's row and file together; None on success, else why not. Sets
    victim["file_removed"] (False when the file vanished since the plan)."""
    kept_ids = [r["id"] for r in p.keep]
    with connect(settings.database_url) as conn:
        still_kept = conn.execute(
            "SELECT id FROM backup.backup_history WHERE id = ANY(%s::uuid[])"
            " AND status = 'completed' FOR SHARE", (kept_ids,),
        ).fetchall()
        if len(still_kept) != len(kept_ids) or not all(_file_present(settings, r)
                                                       for r in p.keep):
            return "stopped: the backups it keeps changed during the sweep"
        row = conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_ROW} FROM backup.backup_history WHERE id = %s FOR UPDATE",
            (victim["id"],),
        ).fetchone()
        if row is None:
            return "already deleted"
        row = _jsonable(row)
        if (row["status"], row["backup_type"], row["schedule_id"]) != \
                ("completed", "scheduled", p.schedule_id):
            return f"changed during the sweep (now {row['backup_type']} {row['status']})"
        if restores_using(conn, [row["id"]]):
            return IN_USE
        conn.execute("DELETE FROM backup.backup_history WHERE id = %s", (row["id"],))
        path = archive_path(settings, row)
        try:
            path.unlink()
            victim["file_removed"] = True
        except FileNotFoundError:  # vanished since the plan: reported in the result
            victim["file_removed"] = False
        except OSError as exc:
            conn.rollback()
            return f"cannot delete {path.name}: {exc.strerror or errno.errorcode.get(exc.errno)}"
    return None


def unknown_files(settings: Settings) -> list[str]:
    """Files in BACKUP_DIR that no catalog row names (hidden files and folders aside)."""
    if not settings.backup_dir.is_dir():
        return []
    with connect(settings.database_url) as conn:
        names = {r[0] for r in conn.execute(
            "SELECT file_name FROM backup.backup_history WHERE file_name IS NOT NULL")}
    found = []
    with os.scandir(settings.backup_dir) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            if entry.name not in names:
                found.append(entry.name)
    return sorted(found)


def missing_files(settings: Settings) -> list[dict[str, Any]]:
    """Completed backups of any type whose archive is not on disk."""
    with connect(settings.database_url) as conn:
        rows = conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_ROW} FROM backup.backup_history WHERE status = 'completed'"
            " ORDER BY started_at DESC, id DESC"
        ).fetchall()
    return [_brief(r) for r in map(_jsonable, rows) if not _file_present(settings, r)]


def apply(settings: Settings, schedule_id: str | None = None, *, dry_run: bool = False
          ) -> RetentionReport:
    """Plan and delete. With a schedule id only that schedule is swept, and only its own
    missing files are reported; without, every schedule, and the whole BACKUP_DIR is checked."""
    report = RetentionReport(dry_run=dry_run)
    report.schedules = plan(settings, schedule_id)
    if schedule_id is None:
        report.missing_files = missing_files(settings)
        report.unknown_files = unknown_files(settings)
    else:
        report.missing_files = [m for p in report.schedules for m in p.missing]
    if dry_run:
        return report
    if schedule_id is None:
        try:
            report.pruned_slot_claims = slots.prune(settings.database_url)
        except Exception as exc:  # noqa: BLE001 - reported; deleting backups goes on
            report.errors.append(f"slot claims not pruned: {one_line(exc)}")
    for p in report.schedules:
        for victim in p.delete:
            try:
                problem = _delete_one(settings, p, victim)
            except Exception as exc:
                problem = one_line(exc)
            if problem is None:
                victim["offsite"] = offsite.remove(settings, victim["id"])
                report.deleted.append({**victim, "schedule": p.name})
            elif problem == "already deleted":
                continue
            elif problem == IN_USE:
                p.protected.append(victim)
            else:
                report.errors.append(f"schedule {p.name!r}: backup {victim['id']} "
                                     f"({victim['file_name']}) not deleted: {problem}")
                if problem.startswith("stopped"):
                    break
    return report
