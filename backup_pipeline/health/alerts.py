"""Late-backup alerts: one "backups are late" message per breach and one "recovered" when it
ends, through the outbox (mail and notification URLs) with its never-twice guarantee.

A breach is a row of `backup.freshness_breaches`; opening or closing it and queueing its
messages happen in one transaction, and the outbox's dedupe key names the breach, so neither a
sensor restart nor two evaluations at once send anything twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from backup_pipeline.health.freshness import ScheduleFreshness, evaluate, open_breaches
from backup_pipeline.notifications import service
from backup_pipeline.notifications import settings as notification_settings
from backup_pipeline.notifications.render import Email
from backup_pipeline.postgres import connect, database_name

LATE = "freshness_late"
RECOVERED = "freshness_recovered"


@dataclass
class Evaluation:
    schedules: list[ScheduleFreshness]
    opened: list[str] = field(default_factory=list)  # schedule names now late
    closed: list[str] = field(default_factory=list)  # schedule names no longer late
    queued: int = 0  # messages queued

    @property
    def late(self) -> list[ScheduleFreshness]:
        return [s for s in self.schedules if s.late]

    def describe(self) -> str:
        late = ", ".join(s.name for s in self.late) or "none"
        text = f"{len(self.schedules)} enabled schedules, late: {late}"
        if self.opened:
            text += f"; newly late: {', '.join(self.opened)}"
        if self.closed:
            text += f"; recovered: {', '.join(self.closed)}"
        return text + (f"; {self.queued} messages queued" if self.queued else "")


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return (f"{days} d {hours} h" if days else f"{hours} h {minutes:02d} min" if hours
            else f"{minutes} min")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if value else "none yet"


def _fields(pairs: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs) + 1
    return "\n".join(f"{(k + ':').ljust(width)}  {v}" for k, v in pairs) + "\n"


def late_message(s: ScheduleFreshness, database: str) -> Email:
    return Email(
        f"Backups are LATE: schedule {s.name} ({s.frequency}, {database})",
        _fields([
            ("Result", "no completed backup within the schedule's interval plus grace"
             if s.age_seconds > s.allowed_seconds else
             "no offsite copy of a backup within the schedule's interval plus grace"),
            ("Database", database),
            ("Schedule", f"{s.name} ({s.frequency}, id {s.schedule_id})"),
            ("Newest backup", _when(s.last_backup_at)
             + (f" (id {s.last_backup_id})" if s.last_backup_id else "")),
            ("Age", _duration(s.age_seconds) if s.last_backup_at else
             f"{_duration(s.age_seconds)} since the schedule was created"),
            ("Newest offsite copy", None if s.offsite_age_seconds is None else
             f"{_duration(s.offsite_age_seconds)} old (its backup's age)"),
            ("Allowed", _duration(s.allowed_seconds)),
            ("Late since", _when(s.late_since)),
            ("Check", "the Dagster daemon runs, the schedule is on in the UI, its recent runs"),
        ]))


def recovered_message(breach: dict[str, Any], s: ScheduleFreshness | None, reason: str,
                      now: datetime, database: str) -> Email:
    return Email(
        f"Backups recovered: schedule {breach['schedule_name']} ({database})",
        _fields([
            ("Result", reason),
            ("Database", database),
            ("Schedule", f"{breach['schedule_name']} ({breach['frequency']}, "
                         f"id {breach['schedule_id']})"),
            ("Newest backup", _when(s.last_backup_at if s else None)),
            ("Was late for", _duration((now - breach["late_since"]).total_seconds())),
        ]))


def _targets(conn: psycopg.Connection, database_url: str, mail_configured: bool):
    current = notification_settings.load(database_url)
    if not (current.email_enabled and current.notify_on_failure):
        return (), ()
    return service.targets(current, mail_configured)


def _open(conn, s: ScheduleFreshness, targets, database: str) -> int | None:
    """Open a breach for a late schedule; the number of messages queued, None when a breach
    was already open."""
    recipients, urls = targets
    row = conn.execute(
        "INSERT INTO backup.freshness_breaches (schedule_id, schedule_name, frequency,"
        " last_backup_at, late_since, notified) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (schedule_id) WHERE closed_at IS NULL DO NOTHING RETURNING id",
        (s.schedule_id, s.name, s.frequency, s.last_backup_at, s.late_since,
         bool(recipients or urls)),
    ).fetchone()
    if row is None:
        return None
    service.queue_all(conn, run_id=None, kind=LATE, email=late_message(s, database),
                      recipients=recipients, urls=urls, event=f"freshness-breach-{row[0]}")
    return len(recipients) + len(urls)


def _close(conn, breach: dict[str, Any], s: ScheduleFreshness | None, targets, now: datetime,
           database: str) -> int | None:
    reason = ("a backup completed in time again" if s is not None
              else "the schedule is disabled or deleted, so it is no longer watched")
    closed = conn.execute(
        "UPDATE backup.freshness_breaches SET closed_at = now(), close_reason = %s"
        " WHERE id = %s AND closed_at IS NULL RETURNING id", (reason, breach["id"]),
    ).fetchone()
    if closed is None:
        return None
    if not breach["notified"]:
        return 0  # nobody heard it was late
    recipients, urls = targets
    service.queue_all(conn, run_id=None, kind=RECOVERED,
                      email=recovered_message(breach, s, reason, now, database),
                      recipients=recipients, urls=urls, event=f"freshness-breach-{breach['id']}")
    return len(recipients) + len(urls)


def track(database_url: str, *, now: datetime, grace: float,
          mail_configured: bool) -> Evaluation:
    """Evaluate freshness, open a breach (and queue "late") for each newly late schedule and
    close one (and queue "recovered") for each schedule no longer late."""
    database = database_name(database_url)
    with connect(database_url) as conn:
        service.check_outbox(conn)
        targets = _targets(conn, database_url, mail_configured)
        with conn.transaction():
            result = Evaluation(evaluate(conn, now, grace))
            by_id = {s.schedule_id: s for s in result.schedules}
            for s in result.late:
                queued = _open(conn, s, targets, database)
                if queued is not None:
                    result.opened.append(s.name)
                    result.queued += queued
            for breach in open_breaches(conn):
                current = by_id.get(breach["schedule_id"])
                if current is not None and current.late:
                    continue
                queued = _close(conn, breach, current, targets, now, database)
                if queued is not None:
                    result.closed.append(breach["schedule_name"])
                    result.queued += queued
    return result
