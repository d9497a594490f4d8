"""Freshness: is every enabled schedule's newest completed backup young enough?

A schedule is late when its newest completed scheduled backup started longer ago than its
interval plus a grace (`FRESHNESS_GRACE`, a fraction of the interval, default 0.5); a schedule
with no completed backup yet counts from its creation. This catches what no failure mail does:
a schedule that silently stopped running (daemon down, schedule turned off in the UI, every run
skipped). Where offsite copies are on (OFFSITE_URL), the schedule's newest backup with a copy
made must be as young: a copy that lags past the same allowance makes the schedule late too
(counted from when copies started, for a schedule older than that).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from backup_pipeline.errors import ConfigError

GRACE_ENV = "FRESHNESS_GRACE"
DEFAULT_GRACE = 0.5
# the longest gap between two ticks of each frequency's cron (a month: 31 days)
INTERVALS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=31),
}


def grace_from_env(environ: Mapping[str, str] | None = None) -> float:
    """FRESHNESS_GRACE as a fraction of the interval (0.5: half an interval late is late)."""
    env = os.environ if environ is None else environ
    text = (env.get(GRACE_ENV) or "").strip()
    if not text:
        return DEFAULT_GRACE
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{GRACE_ENV} must be a fraction of the interval such as 0.5, "
                          f"not {text!r}") from None
    if not 0 <= value <= 100 or value != value:
        raise ConfigError(f"{GRACE_ENV} must be between 0 and 100 (a fraction of the "
                          f"interval), not {text!r}")
    return value


@dataclass(frozen=True)
class ScheduleFreshness:
    schedule_id: str
    name: str
    frequency: str
    allowed_seconds: float  # interval plus grace
    last_backup_id: str | None
    last_backup_at: datetime | None  # the newest completed backup's start
    since: datetime  # what the age counts from: that backup, or the schedule's creation
    age_seconds: float
    late: bool
    offsite_age_seconds: float | None = None  # the newest copied backup's, with copies on
    offsite_late: bool = False

    @property
    def late_since(self) -> datetime:
        return self.since + timedelta(seconds=self.allowed_seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id, "name": self.name, "frequency": self.frequency,
            "state": "late" if self.late else "ok",
            "last_backup_id": self.last_backup_id,
            "last_backup_at": self.last_backup_at.isoformat() if self.last_backup_at else None,
            "age_seconds": round(self.age_seconds, 1),
            "allowed_seconds": self.allowed_seconds,
            "late_since": self.late_since.isoformat() if self.late else None,
            "offsite_age_seconds": None if self.offsite_age_seconds is None
            else round(self.offsite_age_seconds, 1),
            "offsite_late": self.offsite_late,
        }


_ENABLED = """
SELECT s.id::text AS schedule_id, s.name, s.frequency, s.created_at,
       h.id::text AS last_backup_id, h.started_at AS last_backup_at
FROM backup.backup_schedules s
LEFT JOIN LATERAL (
    SELECT id, started_at FROM backup.backup_history
    WHERE schedule_id = s.id AND backup_type = 'scheduled' AND status = 'completed'
    ORDER BY started_at DESC LIMIT 1
) h ON true
WHERE s.is_enabled
ORDER BY s.name, s.id
"""


_NEWEST_COPIED = """
SELECT max(h.started_at) FROM backup.backup_history h
JOIN backup.offsite_copies o ON o.backup_id = h.id
WHERE h.schedule_id = %s AND h.backup_type = 'scheduled' AND h.status = 'completed'
  AND o.state = 'copied'
"""


def offsite_enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool((env.get("OFFSITE_URL") or "").strip())


def _copies_began(conn: psycopg.Connection) -> datetime | None:
    """When the first offsite copy was recorded (None: never, or no table yet)."""
    if conn.execute("SELECT to_regclass('backup.offsite_copies')").fetchone()[0] is None:
        return None
    return conn.execute("SELECT min(created_at) FROM backup.offsite_copies").fetchone()[0]


def evaluate(conn: psycopg.Connection, now: datetime, grace: float,
             offsite: bool | None = None) -> list[ScheduleFreshness]:
    """The freshness of every enabled schedule at `now`; with `offsite` (default: whether
    OFFSITE_URL is set) the age of its newest copied backup counts too."""
    offsite = offsite_enabled() if offsite is None else offsite
    began = _copies_began(conn) if offsite else None
    out = []
    for row in conn.cursor(row_factory=dict_row).execute(_ENABLED).fetchall():
        allowed = INTERVALS[row["frequency"]] * (1 + grace)
        since = row["last_backup_at"] or row["created_at"]
        age = now - since
        late = age > allowed
        offsite_age = None
        offsite_late = False
        if offsite:
            copied = None if began is None else conn.execute(
                _NEWEST_COPIED, (row["schedule_id"],)).fetchone()[0]
            offsite_since = copied or max(row["created_at"], began or now)
            offsite_age = (now - offsite_since).total_seconds()
            offsite_late = offsite_age > allowed.total_seconds()
            if offsite_late and not late:
                since = offsite_since  # late_since counts from the copy that is missing
        out.append(ScheduleFreshness(
            schedule_id=row["schedule_id"], name=row["name"], frequency=row["frequency"],
            allowed_seconds=allowed.total_seconds(), last_backup_id=row["last_backup_id"],
            last_backup_at=row["last_backup_at"], since=since,
            age_seconds=age.total_seconds(), late=late or offsite_late,
            offsite_age_seconds=offsite_age, offsite_late=offsite_late,
        ))
    return out


def open_breaches(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT id, schedule_id::text AS schedule_id, schedule_name, frequency, last_backup_at,"
        " late_since, opened_at, notified FROM backup.freshness_breaches"
        " WHERE closed_at IS NULL ORDER BY id").fetchall()
