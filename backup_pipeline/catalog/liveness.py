"""Whether a backup 'in progress' still has a process writing it.

The writer holds a session advisory lock named after the backup for as long as it writes; the
server drops it with the session when the process ends, however it ends (kill -9, a lost
machine). So a backup in progress whose lock is free was abandoned, whatever its Dagster run
says (a killed in-process run never reports its end).
"""

from __future__ import annotations

import threading
from contextlib import suppress

import psycopg

from backup_pipeline.postgres import connect

_LOCK_CLASS = 0x62707570  # 'bpup', the first key of every backup's lock
_held: dict[str, psycopg.Connection] = {}
_held_lock = threading.Lock()


def hold(database_url: str, backup_id: str) -> None:
    """Take the backup's lock on a session of its own, kept until `release`."""
    # An idle session must not be cut while the backup runs for hours: keepalives against
    # idle network paths, and no server idle timeout (PostgreSQL 14+) for this session.
    conn = connect(database_url, autocommit=True, application_name=f"backup {backup_id}",
                   keepalives=1, keepalives_idle=60, keepalives_interval=10,
                   keepalives_count=6)
    try:
        if conn.info.server_version >= 140000:
            conn.execute("SET idle_session_timeout = 0")
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASS, backup_id))
    except BaseException:
        conn.close()
        raise
    with _held_lock:
        _held[backup_id] = conn


def release(backup_id: str) -> None:
    with _held_lock:
        conn = _held.pop(backup_id, None)
    if conn is not None:
        with suppress(psycopg.Error):
            conn.close()


def abandoned(database_url: str, backup_ids: list[str]) -> list[str]:
    """The backups among `backup_ids` whose writer is gone (nobody holds their lock)."""
    gone = []
    with connect(database_url, autocommit=True) as conn:
        for backup_id in backup_ids:
            key = (_LOCK_CLASS, backup_id)
            if conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", key).fetchone()[0]:
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)
                gone.append(backup_id)
    return gone
