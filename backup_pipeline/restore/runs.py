"""Queries on `backup.restore_runs`: one row per restore or preview, and the guards built on it.

A row in state 'pending' or 'running' means its backup is in use. A unique partial index lets
only one non-dry-run restore be active; a backup or an import asks `refuse_during_restore`
first. The process running a restore holds its liveness lock (catalog.liveness) from before
its row is created until the row is finished; rows whose lock is free are reaped (marked
failed), so a restore whose process died does not block backups and restores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from backup_pipeline.catalog import history, liveness
from backup_pipeline.catalog.history import _jsonable, check_migrated, parse_id
from backup_pipeline.errors import ConfigError, NotFoundError
from backup_pipeline.postgres import connect
from backup_pipeline.restore.errors import RestoreBusyError

SCOPES = ("database", "documents", "both")
# Restores are recorded by restore_job in backup.restore_runs (backup_id, state). A restore
# whose state is not one of these is treated as using its backup: an unknown state protects.
FINISHED_RESTORE_STATES = (
    "completed", "succeeded", "success", "failed", "cancelled", "canceled", "aborted",
    "rolled_back", "done",
)

_COLUMNS = (
    "id, backup_id, safety_backup_id, dry_run, scope, state, step, trigger, dagster_run_id,"
    " error_message, warnings, started_at, finished_at, created_at"
)

def _row(cur) -> dict[str, Any] | None:
    row = cur.fetchone()
    return _jsonable(row) if row else None


def _has_table(conn) -> bool:
    return conn.execute("SELECT to_regclass('backup.restore_runs')").fetchone()[0] is not None


def active_restore(database_url: str) -> dict[str, Any] | None:
    """The restore (not preview) currently pending or running, if any."""
    with connect(database_url) as conn:
        if not _has_table(conn):
            return None
        return _row(conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_COLUMNS} FROM backup.restore_runs"
            " WHERE state IN ('pending', 'running') AND NOT dry_run LIMIT 1"))


def busy_message(row: dict[str, Any], what: str) -> str:
    run = f", Dagster run {row['dagster_run_id']}" if row.get("dagster_run_id") else ""
    return (f"{what} is refused: restore {row['id']} of backup {row['backup_id']} is "
            f"{row['state']} (step {row['step']}, since {row['started_at']}{run}); try again "
            "when it has ended ('backup-pipeline restore-status' shows it)")


def refuse_during_restore(database_url: str, what: str) -> None:
    """Raise RestoreBusyError while a restore of this database runs (backups, imports)."""
    row = active_restore(database_url)
    if row is not None:
        raise RestoreBusyError(busy_message(row, what))


def reap(database_url: str) -> list[str]:
    """Mark failed the active rows whose process has ended without finishing them (nobody
    holds their liveness lock), whatever their Dagster run says."""
    with connect(database_url) as conn:
        if not _has_table(conn):
            return []
        rows = dict(conn.execute(
            "SELECT id::text, step FROM backup.restore_runs"
            " WHERE state IN ('pending', 'running')").fetchall())
    gone = liveness.abandoned(database_url, list(rows), kind="restore") if rows else []
    with connect(database_url) as conn:
        for restore_id in gone:
            conn.execute(
                "UPDATE backup.restore_runs SET state = 'failed', finished_at = now(),"
                " error_message = %s WHERE id = %s AND state IN ('pending', 'running')",
                (f"interrupted: the process running it ended during step {rows[restore_id]}",
                 restore_id))
    return gone


def restores_using(conn, backup_ids: list[str]) -> set[str]:
    """Which of these backups an unfinished restore refers to (none if restores are not
    recorded in this catalog)."""
    if not backup_ids:
        return set()
    if conn.execute("SELECT to_regclass('backup.restore_runs')").fetchone()[0] is None:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT backup_id::text FROM backup.restore_runs"
        " WHERE backup_id::text = ANY(%s) AND NOT (coalesce(state, '') = ANY(%s))",
        (backup_ids, list(FINISHED_RESTORE_STATES)),
    ).fetchall()
    return {r[0] for r in rows}


def running_backups(database_url: str, backup_dir: Path | None = None) -> list[dict[str, Any]]:
    """Backups other than safety backups still being written (a restore must wait for them);
    those whose process died are marked failed first (and their unfinished archives in
    `backup_dir` removed)."""
    history.reap_abandoned(database_url, backup_dir=backup_dir)
    with connect(database_url) as conn:
        rows = conn.cursor(row_factory=dict_row).execute(
            "SELECT id, backup_type, started_at, dagster_run_id FROM backup.backup_history"
            " WHERE status IN ('pending', 'in_progress') AND backup_type <> 'safety'"
            ).fetchall()
    return [_jsonable(r) for r in rows]


def create(database_url: str, *, backup_id: str, dry_run: bool, scope: str, trigger: str,
           run_id: str | None, restore_id: str | None = None) -> dict[str, Any]:
    """The row of a new restore, state running; RestoreBusyError if another restore runs."""
    try:
        with connect(database_url) as conn:
            check_migrated(conn)
            return _row(conn.cursor(row_factory=dict_row).execute(
                "INSERT INTO backup.restore_runs"
                " (id, backup_id, dry_run, scope, state, step, trigger, dagster_run_id)"
                " VALUES (coalesce(%s::uuid, gen_random_uuid()), %s, %s, %s, 'running', 'verify',"
                " %s, %s)"
                f" RETURNING {_COLUMNS}",
                (restore_id, backup_id, dry_run, scope, trigger, run_id)))
    except psycopg.errors.UniqueViolation:
        row = active_restore(database_url)
        if row is None and (restore_id is None or not _exists(database_url, restore_id)):
            # the active restore ended in between
            return create(database_url, backup_id=backup_id, dry_run=dry_run, scope=scope,
                          trigger=trigger, run_id=run_id, restore_id=restore_id)
        if row is None:
            raise ConfigError(f"restore id {restore_id} is taken by an earlier restore") from None
        raise RestoreBusyError(busy_message(row, "this restore")) from None


def update(database_url: str, restore_id: str, **fields: Any) -> None:
    allowed = {"step", "safety_backup_id", "state", "warnings", "preview", "error_message"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown restore_runs fields: {sorted(unknown)}")
    values = {k: Jsonb(v) if k in ("warnings", "preview") else v for k, v in fields.items()}
    assignments = ", ".join(f"{name} = %({name})s" for name in sorted(values))
    ended = fields.get("state") in ("completed", "failed")
    finished = ", finished_at = now()" if ended else ""
    with connect(database_url) as conn:
        conn.execute(f"UPDATE backup.restore_runs SET {assignments}{finished}"
                     " WHERE id = %(id)s", {**values, "id": restore_id})
    if ended:
        liveness.release(restore_id, kind="restore")  # held since claim, see the module


def fail(database_url: str, restore_id: str, message: str) -> None:
    """Mark failed, keeping the step it failed in; never raises (it runs during another
    error)."""
    try:
        update(database_url, restore_id, state="failed", error_message=message[:2000])
    except Exception:  # noqa: BLE001 - the catalog itself may be what failed
        liveness.release(restore_id, kind="restore")  # this process is done with it anyway


def _exists(database_url: str, restore_id: str) -> bool:
    with connect(database_url) as conn:
        return conn.execute("SELECT 1 FROM backup.restore_runs WHERE id = %s",
                            (restore_id,)).fetchone() is not None


def get(database_url: str, restore_id: str) -> dict[str, Any]:
    restore_id = parse_id(restore_id)
    with connect(database_url) as conn:
        row = _row(conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_COLUMNS}, preview FROM backup.restore_runs WHERE id = %s",
            (restore_id,)))
    if row is None:
        raise NotFoundError(f"no restore with id {restore_id}")
    return row


def latest(database_url: str, *, previews: bool = False) -> dict[str, Any] | None:
    """The newest restore (or, with previews, the newest restore or preview)."""
    with connect(database_url) as conn:
        check_migrated(conn)
        if not _has_table(conn):
            return None
        return _row(conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_COLUMNS} FROM backup.restore_runs"
            " WHERE %s OR NOT dry_run ORDER BY started_at DESC, id DESC LIMIT 1", (previews,)))


def find_by_run(database_url: str, run_id: str) -> dict[str, Any] | None:
    with connect(database_url) as conn:
        return _row(conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_COLUMNS} FROM backup.restore_runs WHERE dagster_run_id = %s"
            " ORDER BY started_at DESC LIMIT 1", (run_id,)))
