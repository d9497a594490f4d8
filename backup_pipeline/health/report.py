"""The health of the backups in one report: freshness per schedule, the newest backup, the last
restore drill, the offsite lag and the notification backlog, judged healthy, warning or
failing (exit 0, 1, 2: the monitoring-plugin convention).

Plain facts from the catalog; what only Dagster knows (the last drill) is passed in by the
caller. `offsite` holds the offsite copies' counts and lag where copies are on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from backup_pipeline.health.freshness import ScheduleFreshness, evaluate, offsite_enabled
from backup_pipeline.notifications.service import check_outbox
from backup_pipeline.offsite import catalog as offsite_catalog
from backup_pipeline.postgres import connect

HEALTHY, WARNING, FAILING = "healthy", "warning", "failing"
EXIT_CODES = {HEALTHY: 0, WARNING: 1, FAILING: 2}
GIVEN_UP_WINDOW_HOURS = 24


@dataclass(frozen=True)
class DrillFacts:
    """The last `restore_drill` check evaluation (recorded by the drill job)."""

    passed: bool
    at: datetime
    rto_seconds: float | None = None
    backup_id: str | None = None
    description: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.passed, "at": self.at.isoformat(), "rto_seconds": self.rto_seconds,
                "backup_id": self.backup_id, "description": self.description}


@dataclass
class HealthReport:
    checked_at: datetime
    schedules: list[ScheduleFreshness]
    last_backup: dict[str, Any] | None
    outbox: dict[str, Any]
    drill: DrillFacts | None = None
    offsite: dict[str, Any] | None = None  # counts and lag_seconds, where copies are on
    failing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return FAILING if self.failing else WARNING if self.warnings else HEALTHY

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checked_at": self.checked_at.isoformat(),
            "problems": self.failing + self.warnings,
            "schedules": [s.as_json() for s in self.schedules],
            "last_backup": self.last_backup,
            "drill": self.drill.as_json() if self.drill else None,
            "offsite": self.offsite,
            "outbox": self.outbox,
        }

    def text(self) -> str:
        lines = [f"status: {self.status.upper()}"]
        lines += [f"  FAILING: {p}" for p in self.failing]
        lines += [f"  WARNING: {p}" for p in self.warnings]
        for s in self.schedules:
            newest = s.last_backup_at.isoformat(timespec="seconds") if s.last_backup_at \
                else "none yet"
            lines.append(f"schedule {s.name} ({s.frequency}): {'LATE' if s.late else 'ok'}, "
                         f"newest backup {newest}")
        if not self.schedules:
            lines.append("schedules: none enabled")
        lines.append("drill: " + ("no drill yet" if self.drill is None else
                                  f"{'passed' if self.drill.passed else 'FAILED'} at "
                                  f"{self.drill.at.isoformat(timespec='seconds')}, RTO "
                                  f"{self.drill.rto_seconds} s"))
        if self.offsite is not None:
            lines.append(f"offsite lag: {self.offsite.get('lag_seconds')} s")
        box = self.outbox
        lines.append(f"notifications: {box['waiting']} waiting, {box['retrying']} retrying, "
                     f"{box['given_up_recently']} given up in {GIVEN_UP_WINDOW_HOURS} h")
        return "\n".join(lines)


_LAST_BACKUP = """
SELECT id::text, backup_type, file_name, started_at, completed_at, size_bytes, database_bytes,
       documents_bytes, document_count, duration_seconds
FROM backup.backup_history WHERE status = 'completed'
ORDER BY started_at DESC LIMIT 1
"""

_OUTBOX = f"""
SELECT count(*) FILTER (WHERE state IN ('pending', 'sending')) AS waiting,
       count(*) FILTER (WHERE state = 'pending' AND attempts > 0) AS retrying,
       count(*) FILTER (WHERE state = 'failed'
                        AND created_at > now() - interval '{GIVEN_UP_WINDOW_HOURS} hours')
           AS given_up_recently,
       min(created_at) FILTER (WHERE state IN ('pending', 'sending')) AS oldest_waiting_at,
       (array_agg(last_error ORDER BY next_attempt_at DESC)
           FILTER (WHERE state = 'pending' AND last_error IS NOT NULL))[1] AS last_error
FROM backup.email_outbox
"""


def outbox_facts(conn: psycopg.Connection) -> dict[str, Any]:
    row = conn.cursor(row_factory=dict_row).execute(_OUTBOX).fetchone()
    row["oldest_waiting_at"] = row["oldest_waiting_at"].isoformat() \
        if row["oldest_waiting_at"] else None
    by_state = conn.execute(
        "SELECT channel, state, count(*) FROM backup.email_outbox GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    row["by_channel_state"] = [{"channel": c, "state": s, "count": n} for c, s, n in by_state]
    return row


def last_backup(conn: psycopg.Connection) -> dict[str, Any] | None:
    row = conn.cursor(row_factory=dict_row).execute(_LAST_BACKUP).fetchone()
    if row is None:
        return None
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def offsite_facts(conn: psycopg.Connection, database_url: str) -> dict[str, Any] | None:
    """The copies' counts and lag (offsite status's), where offsite copies are on."""
    if not offsite_enabled() or not offsite_catalog.has_table(conn):
        return None
    return {**offsite_catalog.counts(database_url),
            "lag_seconds": offsite_catalog.lag_seconds(database_url)}


def _judge(report: HealthReport) -> None:
    for s in report.schedules:
        if s.late:
            report.failing.append(f"schedule {s.name} is late: no completed backup for "
                                  f"{round(s.age_seconds / 3600, 1)} h (allowed "
                                  f"{round(s.allowed_seconds / 3600, 1)} h)")
    if not report.schedules:
        report.warnings.append("no backup schedule is enabled")
    for s in report.schedules:
        if s.offsite_late:
            report.failing.append(f"schedule {s.name}: no offsite copy for "
                                  f"{round(s.offsite_age_seconds / 3600, 1)} h (allowed "
                                  f"{round(s.allowed_seconds / 3600, 1)} h)")
    if report.offsite is not None and report.offsite.get("failed"):
        report.warnings.append(f"{report.offsite['failed']} offsite copies failed and are "
                               "retried ('backup-pipeline offsite status')")
    if report.drill is not None and not report.drill.passed:
        report.failing.append("the last restore drill failed")
    box = report.outbox
    if box["retrying"]:
        report.warnings.append(f"{box['retrying']} notifications could not be sent yet "
                               f"(last error: {box['last_error']})")
    if box["given_up_recently"]:
        report.warnings.append(f"{box['given_up_recently']} notifications were given up in "
                               f"the last {GIVEN_UP_WINDOW_HOURS} h")


def build(database_url: str, *, now: datetime, grace: float,
          drill: DrillFacts | None = None) -> HealthReport:
    with connect(database_url) as conn:
        check_outbox(conn)
        report = HealthReport(checked_at=now, schedules=evaluate(conn, now, grace),
                              last_backup=last_backup(conn), outbox=outbox_facts(conn),
                              drill=drill, offsite=offsite_facts(conn, database_url))
    _judge(report)
    return report
