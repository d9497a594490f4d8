"""`backup.offsite_copies`: what was copied where, and what is still to do.

One row per backup. A copy is `pending` while it is being made, `copied` once the bucket holds
it, `failed` after an attempt failed (retried from `next_attempt_at`, with backoff). A row whose
backup was deleted while its copy could not be (Object Lock, storage down) keeps
`backup_deleted_at` until the sweep has deleted the object.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from backup_pipeline.catalog.history import _jsonable
from backup_pipeline.errors import ConfigError
from backup_pipeline.postgres import connect

_LOCK_CLASS = 0x6F666673  # 'offs': one copy of a backup at a time, across processes
FIRST_RETRY_SECONDS = 300
MAX_RETRY_SECONDS = 3600
COLUMNS = ("backup_id::text AS backup_id, bucket, object_key AS key, version_id, state,"
           " encrypted, bytes, object_sha256, archive_sha256, attempts, last_error,"
           " next_attempt_at, failing_since, copied_at, retain_until, backup_deleted_at,"
           " created_at, updated_at")


def has_table(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('backup.offsite_copies')").fetchone()[0] is not None


def check_table(conn: psycopg.Connection) -> None:
    if not has_table(conn):
        raise ConfigError("the catalog needs migration 006_offsite_copies: run "
                          "'backup-pipeline migrate'")


def get(database_url: str, backup_id: str) -> dict[str, Any] | None:
    with connect(database_url) as conn:
        if not has_table(conn):
            return None
        row = conn.cursor(row_factory=dict_row).execute(
            f"SELECT {COLUMNS} FROM backup.offsite_copies WHERE backup_id = %s::uuid",
            (backup_id,)).fetchone()
    return _jsonable(row) if row else None


def start(database_url: str, backup_id: str, bucket: str, key: str, encrypted: bool, *,
          attempt: bool = True) -> None:
    """The copy is being made (again): `pending`, one more attempt; without `attempt`, the
    copy is left to the catch-up, due at once."""
    with connect(database_url) as conn:
        check_table(conn)
        conn.execute(
            "INSERT INTO backup.offsite_copies (backup_id, bucket, object_key, encrypted,"
            " state, attempts, next_attempt_at) VALUES (%(id)s, %(bucket)s, %(key)s, %(enc)s,"
            " 'pending', %(n)s, now())"
            " ON CONFLICT (backup_id) DO UPDATE SET state = 'pending', bucket = %(bucket)s,"
            " object_key = %(key)s, encrypted = %(enc)s, next_attempt_at = now(),"
            " attempts = backup.offsite_copies.attempts + %(n)s, updated_at = now()",
            {"id": backup_id, "bucket": bucket, "key": key, "enc": encrypted,
             "n": 1 if attempt else 0})


def copied(database_url: str, backup_id: str, *, version_id: str | None, bytes_: int,
           object_sha256: str, archive_sha256: str, retain_until: datetime | None
           ) -> dict[str, Any]:
    with connect(database_url) as conn:
        row = conn.cursor(row_factory=dict_row).execute(
            "UPDATE backup.offsite_copies SET state = 'copied', version_id = %s, bytes = %s,"
            " object_sha256 = %s, archive_sha256 = %s, retain_until = %s, last_error = NULL,"
            " next_attempt_at = NULL, failing_since = NULL, copied_at = now(), updated_at = now()"
            f" WHERE backup_id = %s::uuid RETURNING {COLUMNS}",
            (version_id, bytes_, object_sha256, archive_sha256, retain_until, backup_id),
        ).fetchone()
    return _jsonable(row)


def failed(database_url: str, backup_id: str, error: str, *, final: bool = True
           ) -> tuple[dict[str, Any], bool]:
    """Record a failed attempt. A `final` one marks the copy `failed`, due again after a
    backoff; otherwise it stays `pending` (another attempt follows at once). Returns (row,
    first): first when the copy was not failing already, which is when it is worth a mail."""
    with connect(database_url) as conn:
        first = conn.execute(
            "SELECT failing_since IS NULL FROM backup.offsite_copies"
            " WHERE backup_id = %s::uuid FOR UPDATE", (backup_id,)).fetchone()
        row = conn.cursor(row_factory=dict_row).execute(
            "UPDATE backup.offsite_copies SET last_error = %(error)s, updated_at = now(),"
            " state = CASE WHEN %(final)s THEN 'failed' ELSE state END,"
            " failing_since = CASE WHEN %(final)s THEN coalesce(failing_since, now())"
            "   ELSE failing_since END,"
            " next_attempt_at = now() + make_interval(secs => least(%(first)s * 2 ^ greatest("
            "   attempts - 1, 0), %(max)s))"
            f" WHERE backup_id = %(id)s::uuid RETURNING {COLUMNS}",
            {"error": error[:2000], "final": final, "first": FIRST_RETRY_SECONDS,
             "max": MAX_RETRY_SECONDS, "id": backup_id},
        ).fetchone()
    return _jsonable(row), bool(final and first and first[0])


def counts(database_url: str) -> dict[str, int]:
    with connect(database_url) as conn:
        check_table(conn)
        rows = conn.execute(
            "SELECT state, count(*) FROM backup.offsite_copies WHERE backup_deleted_at IS NULL"
            " GROUP BY state").fetchall()
        waiting = conn.execute(
            "SELECT count(*) FROM backup.offsite_copies WHERE backup_deleted_at IS NOT NULL"
        ).fetchone()[0]
    out = {"pending": 0, "copied": 0, "failed": 0}
    out.update({state: n for state, n in rows})
    out["deleted_awaiting_removal"] = waiting
    return out


def lag_seconds(database_url: str) -> float:
    """How far the copies are behind: seconds since the oldest backup whose copy is not made
    yet (pending or failed) was completed; 0 when every copy is made. For health checks."""
    with connect(database_url) as conn:
        check_table(conn)
        oldest = conn.execute(
            "SELECT extract(epoch FROM now() - min(h.completed_at))::float8"
            " FROM backup.offsite_copies o JOIN backup.backup_history h ON h.id = o.backup_id"
            " WHERE o.state <> 'copied' AND o.backup_deleted_at IS NULL"
            " AND h.status = 'completed'").fetchone()[0]
    return round(oldest or 0.0, 1)


def due(database_url: str, *, stale_after_seconds: int = 600) -> list[str]:
    """Backups whose copy is to be (re)made now: failed ones whose retry time has come,
    pending ones left to the catch-up or that nobody has worked on for a while (a process
    that died mid-copy), and completed backups (other than uploads) made since copies were
    first recorded that have no copy yet (a run that ended before its copy step)."""
    with connect(database_url) as conn:
        if not has_table(conn):
            return []
        rows = conn.execute(
            "SELECT backup_id::text FROM backup.offsite_copies o"
            " WHERE backup_deleted_at IS NULL AND ("
            "   (state = 'failed' AND next_attempt_at <= now())"
            "   OR (state = 'pending' AND attempts = 0)"
            "   OR (state = 'pending' AND updated_at < now() - make_interval(secs => %(s)s)))"
            "   AND EXISTS (SELECT 1 FROM backup.backup_history h WHERE h.id = o.backup_id"
            "               AND h.status = 'completed')"
            " UNION"
            " SELECT h.id::text FROM backup.backup_history h"
            " WHERE h.status = 'completed' AND h.backup_type <> 'uploaded'"
            "   AND h.completed_at < now() - make_interval(secs => %(s)s)"
            "   AND h.completed_at > (SELECT min(created_at) FROM backup.offsite_copies)"
            "   AND NOT EXISTS (SELECT 1 FROM backup.offsite_copies o WHERE o.backup_id = h.id)",
            {"s": stale_after_seconds}).fetchall()
    return [r[0] for r in rows]


def deleted_backup(database_url: str, backup_id: str) -> None:
    """The backup is gone but its copy stays for now (locked, or not deletable yet)."""
    with connect(database_url) as conn:
        conn.execute("UPDATE backup.offsite_copies SET backup_deleted_at = coalesce("
                     "backup_deleted_at, now()), updated_at = now()"
                     " WHERE backup_id = %s::uuid", (backup_id,))


def forget(database_url: str, backup_id: str) -> None:
    with connect(database_url) as conn:
        conn.execute("DELETE FROM backup.offsite_copies WHERE backup_id = %s::uuid",
                     (backup_id,))


def orphans(database_url: str) -> list[dict[str, Any]]:
    """Copies whose backup was deleted, to delete once their lock allows."""
    with connect(database_url) as conn:
        if not has_table(conn):
            return []
        rows = conn.cursor(row_factory=dict_row).execute(
            f"SELECT {COLUMNS} FROM backup.offsite_copies WHERE backup_deleted_at IS NOT NULL"
            " ORDER BY backup_deleted_at").fetchall()
    return [_jsonable(r) for r in rows]


@contextmanager
def copying(database_url: str, backup_id: str):
    """Held while one process copies a backup: yields False when another already does."""
    with connect(database_url, autocommit=True) as conn:
        key = (_LOCK_CLASS, backup_id)
        got = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", key).fetchone()[0]
        try:
            yield got
        finally:
            if got:
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)
