"""Queries on `backup.backup_history`: one row per backup, whatever made it."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from backup_pipeline.archive.reader import sha256_file
from backup_pipeline.catalog import liveness
from backup_pipeline.catalog.migrate import refuse_newer
from backup_pipeline.errors import ConfigError, NotFoundError
from backup_pipeline.postgres import connect

BACKUP_TYPES = ("manual", "scheduled", "safety", "uploaded")
STATUSES = ("pending", "in_progress", "completed", "failed")

_COLUMNS = (
    "id, backup_type, status, trigger, schedule_id, note, file_name, size_bytes, sha256,"
    " database_bytes, document_count, documents_bytes, format_version, server_version,"
    " pg_dump_version, dagster_run_id, error_message, started_at, completed_at,"
    " duration_seconds, created_at"
)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[key] = value
    return out


def _cursor(conn):
    return conn.cursor(row_factory=dict_row)


def parse_id(text: str) -> str:
    try:
        return str(uuid.UUID(str(text).strip()))
    except ValueError:
        raise NotFoundError(f"no backup with id {text!r} (ids are UUIDs)") from None


def check_migrated(conn) -> None:
    """Refuse a catalog that is not set up, or that a newer backup_pipeline migrated."""
    if conn.execute("SELECT to_regclass('backup.backup_history')").fetchone()[0] is None:
        raise ConfigError("the catalog is not set up: run 'backup-pipeline migrate' first")
    refuse_newer(conn)


def require_catalog(database_url: str) -> None:
    """check_migrated on a connection of its own, for work that reads the catalog later."""
    with connect(database_url) as conn:
        check_migrated(conn)


def create(
    database_url: str,
    *,
    backup_type: str,
    trigger: str,
    schedule_id: str | None = None,
    note: str | None = None,
    dagster_run_id: str | None = None,
    backup_id: str | None = None,
) -> dict[str, Any]:
    if backup_type not in BACKUP_TYPES:
        raise ConfigError(f"unknown backup type {backup_type!r}; expected one of {BACKUP_TYPES}")
    with connect(database_url) as conn:
        check_migrated(conn)
        row = _cursor(conn).execute(
            "INSERT INTO backup.backup_history"
            " (id, backup_type, status, trigger, schedule_id, note, dagster_run_id)"
            " VALUES (coalesce(%s::uuid, gen_random_uuid()), %s, 'in_progress', %s, %s, %s, %s)"
            f" RETURNING {_COLUMNS}",
            (backup_id, backup_type, trigger, schedule_id, note, dagster_run_id),
        ).fetchone()
    return _jsonable(row)


def complete(database_url: str, backup_id: str, **fields: Any) -> dict[str, Any]:
    """Mark a backup completed with its final facts (file name, sizes, checksum, versions)."""
    allowed = {
        "file_name", "size_bytes", "sha256", "database_bytes", "document_count",
        "documents_bytes", "format_version", "server_version", "pg_dump_version",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown history fields: {sorted(unknown)}")
    assignments = "".join(f", {name} = %({name})s" for name in sorted(fields))
    with connect(database_url) as conn:
        row = _cursor(conn).execute(
            "UPDATE backup.backup_history SET status = 'completed', error_message = NULL,"
            " completed_at = now(),"
            " duration_seconds = extract(epoch FROM now() - started_at)"
            f"{assignments} WHERE id = %(id)s RETURNING {_COLUMNS}",
            {**fields, "id": backup_id},
        ).fetchone()
    if row is None:
        raise NotFoundError(f"no backup with id {backup_id}")
    return _jsonable(row)


def intend_file(database_url: str, backup_id: str, file_name: str, sha256: str) -> bool:
    """Record the archive's final name and checksum before it is linked there: if the process
    dies before the backup is completed, the reaper knows which file it left. False when
    another row has that name (file names are unique): the caller tries another."""
    try:
        with connect(database_url) as conn:
            conn.execute("UPDATE backup.backup_history SET file_name = %s, sha256 = %s"
                         " WHERE id = %s AND status IN ('pending', 'in_progress')",
                         (file_name, sha256, backup_id))
    except psycopg.errors.UniqueViolation:
        return False
    return True


def fail(database_url: str, backup_id: str, error: str) -> None:
    """Mark a backup failed. The first reason stays: later steps failing in its wake do not
    overwrite it."""
    with connect(database_url) as conn:
        conn.execute(
            "UPDATE backup.backup_history SET status = 'failed', error_message = %s,"
            " file_name = NULL, sha256 = NULL, completed_at = now(),"
            " duration_seconds = extract(epoch FROM now() - started_at)"
            " WHERE id = %s AND status IN ('pending', 'in_progress')",
            (error[:2000], backup_id),
        )


def _remove_unfinished_archive(database_url: str, backup_dir: Path, backup_id: str,
                               file_name: str | None, sha256: str | None) -> str:
    """Remove the archive an abandoned backup linked but never recorded as completed: only
    the file its row names, only if no other row names it and it has the recorded sha256
    (the name may have been taken by another file when the process died). Returns what to
    add to the row's error."""
    if not file_name or not sha256 or Path(file_name).name != file_name:
        return ""
    path = Path(backup_dir) / file_name
    with connect(database_url) as conn:
        named = conn.execute("SELECT 1 FROM backup.backup_history WHERE file_name = %s"
                             " AND id <> %s LIMIT 1", (file_name, backup_id)).fetchone()
    try:
        if named is not None or not path.is_file() or sha256_file(path) != sha256:
            return ""
        path.unlink()
    except OSError as exc:
        return f"; its unfinished archive {file_name} could not be removed ({exc.strerror})"
    return f"; its unfinished archive {file_name} was removed"


def reap_abandoned(database_url: str, keep: str | None = None,
                   backup_dir: Path | None = None) -> list[str]:
    """Mark failed the backups left in progress by a process that ended without finishing
    them (see liveness); `keep` is the caller's own backup. With `backup_dir`, an archive such
    a backup linked before it died is removed first (it was never completed)."""
    with connect(database_url) as conn:
        rows = {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT id::text, file_name, sha256 FROM backup.backup_history"
            " WHERE status IN ('pending', 'in_progress') AND id::text <> %s",
            (keep or "",)).fetchall()}
    gone = liveness.abandoned(database_url, list(rows)) if rows else []
    for backup_id in gone:
        removed = "" if backup_dir is None else \
            _remove_unfinished_archive(database_url, backup_dir, backup_id, *rows[backup_id])
        fail(database_url, backup_id, "interrupted: the process writing it ended before it "
             f"finished{removed}")
    return gone


def get(database_url: str, backup_id: str) -> dict[str, Any]:
    backup_id = parse_id(backup_id)
    with connect(database_url) as conn:
        check_migrated(conn)
        row = _cursor(conn).execute(
            f"SELECT {_COLUMNS} FROM backup.backup_history WHERE id = %s", (backup_id,)
        ).fetchone()
    if row is None:
        raise NotFoundError(f"no backup with id {backup_id}")
    return _jsonable(row)


def find_by_run(database_url: str, run_id: str) -> dict[str, Any] | None:
    with connect(database_url) as conn:
        row = _cursor(conn).execute(
            f"SELECT {_COLUMNS} FROM backup.backup_history WHERE dagster_run_id = %s"
            " ORDER BY started_at DESC LIMIT 1",
            (run_id,),
        ).fetchone()
    return _jsonable(row) if row else None


def list_page(
    database_url: str,
    *,
    page: int = 1,
    page_size: int = 20,
    backup_type: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """One page, newest first, in a stable order (started_at, then id)."""
    if page < 1:
        raise ConfigError("page must be 1 or more")
    if not 1 <= page_size <= 500:
        raise ConfigError("page size must be between 1 and 500")
    if backup_type is not None and backup_type not in BACKUP_TYPES:
        raise ConfigError(f"unknown backup type {backup_type!r}; expected one of {BACKUP_TYPES}")
    if status is not None and status not in STATUSES:
        raise ConfigError(f"unknown status {status!r}; expected one of {STATUSES}")
    where = "WHERE (%(type)s::text IS NULL OR backup_type = %(type)s)" \
            " AND (%(status)s::text IS NULL OR status = %(status)s)"
    params = {"type": backup_type, "status": status,
              "limit": page_size, "offset": (page - 1) * page_size}
    with connect(database_url) as conn:
        check_migrated(conn)
        cur = _cursor(conn)
        total = cur.execute(
            f"SELECT count(*) AS n FROM backup.backup_history {where}", params
        ).fetchone()["n"]
        rows = cur.execute(
            f"SELECT {_COLUMNS} FROM backup.backup_history {where}"
            " ORDER BY started_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
            params,
        ).fetchall()
    return {"items": [_jsonable(r) for r in rows], "total": total,
            "page": page, "page_size": page_size}


def delete(database_url: str, backup_id: str) -> None:
    with connect(database_url) as conn:
        conn.execute("DELETE FROM backup.backup_history WHERE id = %s", (backup_id,))


def file_names_like(database_url: str, stem: str) -> set[str]:
    """Archive names the catalog holds that start with stem (the same second's names)."""
    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT file_name FROM backup.backup_history WHERE starts_with(file_name, %s)",
            (stem,),
        ).fetchall()
    return {r[0] for r in rows}
