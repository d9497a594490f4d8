"""Slot claims: at most one backup per (schedule, slot time), whatever the locks did.

A claim is a lease in `backup.schedule_slots`, renewed while its run works. Another run may take
a slot over only when the lease ran out and the slot was not completed; the owner token fences
completion, so a run that was paused past its lease cannot complete a slot it no longer owns.
All times are the database's, so the clocks of the machines running backups do not matter.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg.rows import dict_row

from backup_pipeline.errors import BackupPipelineError, ConfigError
from backup_pipeline.postgres import connect

_KEY = "schedule_id = %(schedule_id)s AND slot_time = %(slot_time)s"


class SlotUnavailable(BackupPipelineError):
    """This run must not make the slot's backup; the message says why."""


@dataclass(frozen=True)
class Claim:
    schedule_id: str
    schedule_name: str
    slot_time: datetime
    owner_token: str
    attempt: int
    took_over_from: str | None = None

    @property
    def key(self) -> dict[str, object]:
        return {"schedule_id": self.schedule_id, "slot_time": self.slot_time,
                "owner": self.owner_token}


def slot_time(value: datetime | str | None) -> datetime:
    """The slot a tick stands for, in UTC to the second; a missing tick time means now."""
    if value is None:
        value = datetime.now(UTC).replace(second=0)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"slot_time {value!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise ConfigError(f"slot_time {value.isoformat()} has no time zone")
    return value.astimezone(UTC).replace(microsecond=0)


def slot_text(value: datetime) -> str:
    return slot_time(value).isoformat().replace("+00:00", "Z")


def run_key(schedule_id: str, slot: datetime) -> str:
    return f"{schedule_id}@{slot_text(slot)}"


def new_token() -> str:
    return secrets.token_hex(16)


def claim(database_url: str, *, schedule_id: str, slot: datetime, owner_token: str,
          run_id: str | None, ttl_seconds: float) -> Claim:
    """Claim the slot for this run or raise SlotUnavailable with the reason."""
    params = {"schedule_id": schedule_id, "slot_time": slot_time(slot), "owner": owner_token,
              "run_id": run_id, "ttl": ttl_seconds}
    with connect(database_url) as conn:
        cur = conn.cursor(row_factory=dict_row)
        schedule = cur.execute(
            "SELECT name, is_enabled FROM backup.backup_schedules WHERE id = %(schedule_id)s"
            " FOR KEY SHARE", params,
        ).fetchone()
        if schedule is None:
            raise SlotUnavailable(f"schedule {schedule_id} no longer exists")
        if not schedule["is_enabled"]:
            raise SlotUnavailable(f"schedule {schedule['name']!r} is disabled")
        inserted = cur.execute(
            "INSERT INTO backup.schedule_slots"
            " (schedule_id, slot_time, state, owner_token, dagster_run_id, lease_until)"
            " VALUES (%(schedule_id)s, %(slot_time)s, 'claimed', %(owner)s, %(run_id)s,"
            "         now() + make_interval(secs => %(ttl)s))"
            " ON CONFLICT (schedule_id, slot_time) DO NOTHING RETURNING attempts", params,
        ).fetchone()
        previous = None
        if inserted is None:
            previous = _take_over(cur, params, schedule["name"])
        cur.execute("UPDATE backup.backup_schedules SET last_run_at = now()"
                    " WHERE id = %(schedule_id)s", params)
    return Claim(schedule_id, schedule["name"], params["slot_time"], owner_token,
                 previous["attempts"] + 1 if previous else 1,
                 previous["dagster_run_id"] if previous else None)


def _take_over(cur, params: dict, name: str) -> dict:
    """The slot row exists: take it only if it was neither completed nor is still leased."""
    where = f"{name!r} slot {slot_text(params['slot_time'])}"
    try:  # other claimants hold the row only for a moment; a completing owner a bit longer
        cur.execute("SET LOCAL lock_timeout = '10s'")
        row = cur.execute(
            "SELECT state, dagster_run_id, backup_id, attempts, lease_until > now() AS leased"
            f" FROM backup.schedule_slots WHERE {_KEY} FOR UPDATE", params,
        ).fetchone()
    except psycopg.errors.LockNotAvailable:
        raise SlotUnavailable(f"{where} is locked by another run that is completing it"
                              ) from None
    if row["state"] == "completed":
        raise SlotUnavailable(f"{where} was already completed by run {row['dagster_run_id']}")
    if row["state"] == "claimed" and row["leased"]:
        raise SlotUnavailable(f"{where} is claimed by run {row['dagster_run_id']}, "
                              "which is still working on it")
    if row["state"] == "claimed" and row["backup_id"] is not None:
        # Its owner may have died between completing the backup and completing the slot.
        done = cur.execute(
            "SELECT status = 'completed' AS done FROM backup.backup_history WHERE id = %s",
            (row["backup_id"],),
        ).fetchone()
        if done and done["done"]:
            cur.execute("UPDATE backup.schedule_slots SET state = 'completed',"
                        f" updated_at = now() WHERE {_KEY}", params)
            cur.connection.commit()
            raise SlotUnavailable(f"{where} was already completed by run "
                                  f"{row['dagster_run_id']}")
    cur.execute(
        "UPDATE backup.schedule_slots SET state = 'claimed', owner_token = %(owner)s,"
        " dagster_run_id = %(run_id)s, backup_id = NULL, error_message = NULL,"
        " lease_until = now() + make_interval(secs => %(ttl)s), attempts = attempts + 1,"
        f" updated_at = now() WHERE {_KEY}", params,
    )
    return row


def attach(database_url: str, claim_: Claim, backup_id: str) -> bool:
    """Tie the backup row to the slot (history.slot_time and the claim's backup_id)."""
    with connect(database_url) as conn:
        conn.execute("UPDATE backup.backup_history SET slot_time = %(slot_time)s"
                     " WHERE id = %(backup_id)s", {**claim_.key, "backup_id": backup_id})
        done = conn.execute(
            "UPDATE backup.schedule_slots SET backup_id = %(backup_id)s, updated_at = now()"
            f" WHERE {_KEY} AND owner_token = %(owner)s AND state = 'claimed'",
            {**claim_.key, "backup_id": backup_id},
        )
        return done.rowcount == 1


def renew(database_url: str, claim_: Claim, ttl_seconds: float) -> bool:
    """Extend the lease; False when this run no longer owns the slot."""
    with connect(database_url, autocommit=True) as conn:
        done = conn.execute(
            "UPDATE backup.schedule_slots"
            " SET lease_until = now() + make_interval(secs => %(ttl)s)"
            f" WHERE {_KEY} AND owner_token = %(owner)s AND state = 'claimed'",
            {**claim_.key, "ttl": ttl_seconds},
        )
        return done.rowcount == 1


def release(database_url: str, claim_: Claim, reason: str) -> bool:
    """Give up a claim that did not complete, so a retry of the slot may take it at once."""
    with connect(database_url) as conn:
        done = conn.execute(
            "UPDATE backup.schedule_slots SET state = 'failed', error_message = %(reason)s,"
            " lease_until = now(), updated_at = now()"
            f" WHERE {_KEY} AND owner_token = %(owner)s AND state = 'claimed'",
            {**claim_.key, "reason": reason[:2000]},
        )
        return done.rowcount == 1


class Fence:
    """Inside `completing`: whether this run still owns the slot, and how to complete it."""

    def __init__(self, conn: psycopg.Connection, claim_: Claim, owned: bool, reason: str):
        self.conn = conn
        self.claim = claim_
        self.owned = owned
        self.reason = reason

    def complete(self, backup_id: str) -> int:
        """Mark the slot completed and the schedule's last backup; fail what the slot's
        abandoned runs left in progress. Returns how many such rows were failed."""
        params = {**self.claim.key, "backup_id": backup_id}
        self.conn.execute(
            "UPDATE backup.schedule_slots SET state = 'completed', backup_id = %(backup_id)s,"
            f" lease_until = now(), updated_at = now() WHERE {_KEY}", params,
        )
        self.conn.execute(
            "UPDATE backup.backup_schedules SET last_backup_id = %(backup_id)s"
            " WHERE id = %(schedule_id)s", params,
        )
        superseded = self.conn.execute(
            "UPDATE backup.backup_history SET status = 'failed', completed_at = now(),"
            " error_message = 'abandoned: its run stopped renewing the slot claim; the slot'"
            "  || ' was completed by backup ' || %(backup_id)s::text"
            " WHERE schedule_id = %(schedule_id)s AND slot_time = %(slot_time)s"
            " AND id <> %(backup_id)s AND status IN ('pending', 'in_progress')", params,
        )
        return superseded.rowcount


@contextmanager
def completing(database_url: str, claim_: Claim) -> Iterator[Fence]:
    """Hold the slot row locked while the backup is completed, so nobody takes it over in
    between; everything done through the fence commits together on exit."""
    with connect(database_url) as conn:
        row = conn.cursor(row_factory=dict_row).execute(
            "SELECT state, owner_token, dagster_run_id FROM backup.schedule_slots"
            f" WHERE {_KEY} FOR UPDATE", claim_.key,
        ).fetchone()
        where = f"slot {slot_text(claim_.slot_time)} of schedule {claim_.schedule_name!r}"
        if row is None:
            owned, reason = False, f"{where} no longer exists (schedule deleted?)"
        elif row["owner_token"] != claim_.owner_token:
            owned, reason = False, (f"this run lost its claim on {where}: run "
                                    f"{row['dagster_run_id']} took it over after the lease "
                                    "ran out")
        elif row["state"] != "claimed":
            owned, reason = False, f"{where} is already {row['state']}"
        else:
            owned, reason = True, ""
        yield Fence(conn, claim_, owned, reason)


SLOT_CLAIMS_KEPT = "30 days"


def prune(database_url: str, older_than: str = SLOT_CLAIMS_KEPT) -> int:
    """Forget ended claims of slots long past (no tick is launched that late, and the
    one-completed-backup-per-slot index stays); returns how many were removed."""
    with connect(database_url) as conn:
        return conn.execute(
            "DELETE FROM backup.schedule_slots WHERE slot_time < now() - %s::interval"
            " AND (state <> 'claimed' OR lease_until < now() - %s::interval)",
            (older_than, older_than)).rowcount
