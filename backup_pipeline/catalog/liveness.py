"""Whether a backup, restore or restore drill still running has a process doing it, and one
start at a time.

The process doing a backup or restore holds a session advisory lock named after it for as long
as it works; the server drops it with the session when the process ends, however it ends
(kill -9, a lost machine). So a backup in progress or a restore running whose lock is free was
abandoned, whatever its Dagster run says (a killed in-process run never reports its end, and
Dagster's default run launcher cannot tell that a run's worker died).

`starting` serializes the start of backups and restores: each checks for the other and inserts
its own row under that one lock, so neither can slip in between the other's check and insert.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg

from backup_pipeline.postgres import connect

# The first key of every backup's (restore's) lock, the second is hashtext(its id).
_LOCK_CLASSES = {"backup": 0x62707570, "restore": 0x62707273,  # 'bpup', 'bprs'
                 "drill": 0x62706472}  # 'bpdr': a restore drill (backup_pipeline.drills)
_START_LOCK = (0x62707374, 0)  # 'bpst': taken by whoever is starting a backup or restore
_held: dict[tuple[str, str], psycopg.Connection] = {}
_held_lock = threading.Lock()


def _session(database_url: str, name: str) -> psycopg.Connection:
    # An idle session must not be cut while the work runs for hours: keepalives against
    # idle network paths, and no server idle timeout (PostgreSQL 14+) for this session.
    conn = connect(database_url, autocommit=True, application_name=name,
                   keepalives=1, keepalives_idle=60, keepalives_interval=10,
                   keepalives_count=6)
    try:
        if conn.info.server_version >= 140000:
            conn.execute("SET idle_session_timeout = 0")
    except BaseException:
        conn.close()
        raise
    return conn


def hold(database_url: str, work_id: str, kind: str = "backup") -> None:
    """Take the lock of backup (or restore) `work_id` on a session of its own, kept until
    `release`."""
    conn = _session(database_url, f"{kind} {work_id}")
    try:
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASSES[kind], work_id))
    except BaseException:
        conn.close()
        raise
    with _held_lock:
        _held[(kind, work_id)] = conn


def release(work_id: str, kind: str = "backup") -> None:
    with _held_lock:
        conn = _held.pop((kind, work_id), None)
    if conn is not None:
        with suppress(psycopg.Error):
            conn.close()


def abandoned(database_url: str, work_ids: list[str], kind: str = "backup") -> list[str]:
    """The backups (restores) among `work_ids` whose process is gone (nobody holds their
    lock)."""
    gone = []
    with connect(database_url, autocommit=True) as conn:
        for work_id in work_ids:
            key = (_LOCK_CLASSES[kind], work_id)
            if conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", key).fetchone()[0]:
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)
                gone.append(work_id)
    return gone


@contextmanager
def starting(database_url: str) -> Iterator[None]:
    """Hold the start lock (waiting for it) while the caller checks for a conflicting backup
    or restore and inserts its own row; the row is committed before the lock is let go."""
    with connect(database_url, autocommit=True, application_name="backup-pipeline start") \
            as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", _START_LOCK)
        try:
            yield
        finally:
            with suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", _START_LOCK)
