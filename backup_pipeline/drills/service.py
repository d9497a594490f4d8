"""One restore drill: the backup (default the newest completed one) loaded into a scratch
database `<live>_drill_<8 hex>` and a scratch folder `BACKUP_DIR/.drill/<id>/`, compared with
its manifest, timed, and dropped again, whatever happens.

It uses the restore's own staging (restore.load.stage): the same checks on the way into psql,
the same restricted temporary role for archives the catalog did not make. It never touches the
live database or documents, takes no restore slot and blocks no backup. Its process holds the
drill's liveness lock throughout, and the scratch database is recorded in
`backup.restore_databases` before it is created: a drill killed part-way leaves it to the next
drill, which drops it only once the lock is free (never a database that merely looks like one).
"""

from __future__ import annotations

import shutil
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from backup_pipeline.archive.reader import read_manifest
from backup_pipeline.backup.inventory import archive_path
from backup_pipeline.backup.service import describe_error, ensure_private_dir
from backup_pipeline.catalog import history, liveness
from backup_pipeline.drills.compare import Comparison, compare_documents, compare_tables
from backup_pipeline.errors import NotFoundError
from backup_pipeline.postgres import connect, database_name, with_database
from backup_pipeline.progress import Progress
from backup_pipeline.restore import database, roles, siblings
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.load import stage
from backup_pipeline.restore.plan import RestorePlan
from backup_pipeline.settings import Settings

DRILL_STAGING = ".drill"


class DrillError(RestoreError):
    """The drill could not be started (no backup to drill, archive missing)."""


@dataclass
class DrillResult:
    drill_id: str
    backup_id: str
    ok: bool
    rto_seconds: float
    comparison: Comparison = field(default_factory=Comparison)
    error: str | None = None

    @property
    def description(self) -> str:
        if self.error:
            return f"drill of backup {self.backup_id} failed: {self.error}"
        if self.comparison.mismatches:
            return (f"drill of backup {self.backup_id} failed: "
                    + "; ".join(self.comparison.mismatches[:5])
                    + (f" (and {len(self.comparison.mismatches) - 5} more)"
                       if len(self.comparison.mismatches) > 5 else ""))
        counted = "" if self.comparison.counts_in_manifest else \
            " (the manifest has no row counts: tables not compared)"
        return (f"backup {self.backup_id} restored in {self.rto_seconds:.1f}s: "
                f"{len(self.comparison.tables)} tables and {self.comparison.documents_checked} "
                f"documents match the manifest{counted}")

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "drill_id": self.drill_id, "backup_id": self.backup_id,
                "rto_seconds": round(self.rto_seconds, 3), "tables": self.comparison.tables,
                "tables_checked": len(self.comparison.tables),
                "documents_checked": self.comparison.documents_checked,
                "counts_in_manifest": self.comparison.counts_in_manifest,
                "mismatches": self.comparison.mismatches, "error": self.error,
                "description": self.description}


def drill_root(settings: Settings) -> Path:
    return settings.backup_dir / DRILL_STAGING


def pick_backup(settings: Settings, backup_id: str | None) -> dict[str, Any]:
    """The backup to drill: `backup_id`, or the newest completed one."""
    url = settings.database_url
    if backup_id:
        backup = history.get(url, backup_id)
    else:
        items = history.list_page(url, page_size=1, status="completed")["items"]
        if not items:
            raise NotFoundError("there is no completed backup to drill")
        backup = items[0]
    if backup["status"] != "completed":
        raise DrillError(f"backup {backup['id']} is {backup['status']}, not completed: it "
                         "cannot be drilled")
    return backup


def make_plan(settings: Settings, drill_id: str, backup: dict[str, Any], path: Path
              ) -> RestorePlan:
    """The drill as a restore plan for restore.load.stage: everything in scratch places."""
    staging = drill_root(settings) / drill_id
    return RestorePlan(
        restore_id=drill_id, backup_id=backup["id"], archive_path=str(path),
        archive_sha256=backup.get("sha256"), backup_type=backup["backup_type"], dry_run=False,
        scope="both", staging_dir=str(staging), documents_dir=str(staging / "documents"),
        documents_staging=str(staging / "documents"),
        new_database=database.sibling_name(database_name(settings.database_url), "drill",
                                           drill_id),
        old_database="")


def sweep(settings: Settings, keep: str | None = None) -> list[str]:
    """Drop what drills whose process died left: their recorded scratch databases, their
    roles and their folders. Returns the databases dropped."""
    url = settings.database_url
    root = drill_root(settings)
    folders = [p.name for p in root.iterdir() if p.is_dir() and p.name != keep] \
        if root.is_dir() else []
    with connect(url) as conn:
        recorded = [r[0] for r in conn.execute(
            "SELECT DISTINCT restore_id::text FROM backup.restore_databases"
            " WHERE name LIKE '%%\\_drill\\_%%' AND restore_id::text <> %s",
            (keep or "",)).fetchall()]
    ids = sorted(set(recorded) | {f for f in folders if _is_uuid(f)})
    dead = liveness.abandoned(url, ids, kind="drill") if ids else []
    dropped = siblings.sweep(url, only=dead) if dead else []
    for drill_id in dead:
        with suppress(RestoreError, psycopg.Error):
            roles.drop_for_restore(settings, drill_id)
        shutil.rmtree(root / drill_id, ignore_errors=True)
    return dropped


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def cleanup(settings: Settings, plan: RestorePlan) -> None:
    """Drop the drill's scratch database, roles and folder (only what it recorded as its own)."""
    with suppress(Exception):
        siblings.drop_own(settings.database_url, plan.new_database, plan.restore_id)
    with suppress(Exception):
        roles.drop_for_restore(settings, plan.restore_id)
    shutil.rmtree(plan.staging_dir, ignore_errors=True)


def run_drill(settings: Settings, backup_id: str | None = None, *,
              progress: Progress | None = None) -> DrillResult:
    """Drill `backup_id` (default the newest completed backup). A drill that ran returns its
    result, passed or not; one that cannot start (no such backup, archive missing, catalog
    not migrated) raises."""
    progress = progress or Progress()
    url = settings.database_url
    backup = pick_backup(settings, backup_id)
    path = archive_path(settings, backup)
    if path is None or not path.is_file():
        raise DrillError(f"the archive of backup {backup['id']} ({backup.get('file_name')}) is "
                         f"missing in {settings.backup_dir}")
    drill_id = str(uuid.uuid4())
    started = time.monotonic()
    liveness.hold(url, drill_id, kind="drill")  # before anything is recorded or made
    try:
        ensure_private_dir(drill_root(settings))
        with suppress(OSError, RestoreError, psycopg.Error):
            sweep(settings, keep=drill_id)
        plan = make_plan(settings, drill_id, backup, path)
        comparison = Comparison()
        try:
            _load_and_compare(settings, plan, comparison, progress)
            error = None
        except Exception as exc:  # the drill failed: that is its result
            error = describe_error(exc)
        finally:
            rto = time.monotonic() - started
            cleanup(settings, plan)
        ok = error is None and not comparison.mismatches
        return DrillResult(drill_id, backup["id"], ok, rto, comparison, error)
    finally:
        liveness.release(drill_id, kind="drill")


def _load_and_compare(settings: Settings, plan: RestorePlan, comparison: Comparison,
                      progress: Progress) -> None:
    """Stage the archive (every member's sha256 and the whole file's checked on the way), let
    psql commit the scratch database, then compare."""
    manifest = read_manifest(Path(plan.archive_path))
    progress.set_phase("loading the scratch database")
    loader = stage(settings, plan, manifest, on_bytes=progress.add_bytes)
    loader.finish()
    progress.set_phase("comparing with the manifest")
    compare_tables(comparison, manifest, with_database(settings.database_url, plan.new_database))
    compare_documents(comparison, manifest, Path(plan.documents_staging))
