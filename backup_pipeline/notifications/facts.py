"""What a notification says about a finished run, read from the catalog (not from logs).

`backup_job` runs are described by their `backup.backup_history` row, `drill_job` runs by the
backup they drilled and their error. `restore_job` runs by their
`backup.restore_runs` row when that table exists (columns backup_id, safety_backup_id, state,
step, error_message, dagster_run_id), otherwise by the run's config. Dagster contributes only what
the catalog cannot know: which step failed first and its error, when the catalog has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

BACKUP_JOB = "backup_job"
RESTORE_JOB = "restore_job"
DRILL_JOB = "drill_job"
JOB_FAMILIES = {BACKUP_JOB: "backup", RESTORE_JOB: "restore", DRILL_JOB: "drill"}
KINDS = ("backup_success", "backup_failure", "restore_success", "restore_failure",
         "drill_failure")  # a drill that passed is recorded as its check, not mailed


@dataclass(frozen=True)
class FinishedRun:
    """A Dagster run that ended, as plain data."""

    run_id: str
    job_name: str
    succeeded: bool
    tags: Mapping[str, str] = field(default_factory=dict)
    run_config: Mapping[str, Any] = field(default_factory=dict)
    failed_step: str | None = None
    error: str | None = None
    skip_reason: str | None = None  # why a run that succeeded made nothing (a run tag)

    @property
    def kind(self) -> str:
        family = JOB_FAMILIES.get(self.job_name)
        if family is None:
            raise ValueError(f"no notifications for job {self.job_name!r}")
        return f"{family}_{'success' if self.succeeded else 'failure'}"


@dataclass(frozen=True)
class BackupFacts:
    row: dict[str, Any] | None
    trigger: str

    @property
    def made_backup(self) -> bool:
        return self.row is not None and self.row["status"] == "completed"


@dataclass(frozen=True)
class RestoreFacts:
    dry_run: bool
    backup_id: str | None
    backup: dict[str, Any] | None
    safety_backup_id: str | None
    safety: dict[str, Any] | None
    state: str | None
    step: str | None
    error: str | None
    source: str  # "backup.restore_runs" or "run config"


def find_in_config(config: Any, key: str) -> Any:
    """The first value of `key` anywhere in a nested run config (ops or resources), or None."""
    if isinstance(config, Mapping):
        if key in config:
            return config[key]
        for value in config.values():
            found = find_in_config(value, key)
            if found is not None:
                return found
    elif isinstance(config, list | tuple):
        for value in config:
            found = find_in_config(value, key)
            if found is not None:
                return found
    return None


def _cursor(conn: psycopg.Connection):
    return conn.cursor(row_factory=dict_row)


def _history_row(conn: psycopg.Connection, where: str, value: str) -> dict[str, Any] | None:
    return _cursor(conn).execute(
        "SELECT id::text AS id, backup_type, status, trigger, schedule_id::text AS schedule_id,"
        " file_name, size_bytes, database_bytes, document_count, duration_seconds,"
        " error_message, started_at, completed_at"
        f" FROM backup.backup_history WHERE {where} ORDER BY started_at DESC LIMIT 1",
        (value,),
    ).fetchone()


def backup_by_id(conn: psycopg.Connection, backup_id: str | None) -> dict[str, Any] | None:
    if not backup_id:
        return None
    try:
        with conn.transaction():
            return _history_row(conn, "id = %s::uuid", str(backup_id))
    except psycopg.errors.InvalidTextRepresentation:
        return None


def describe_trigger(conn: psycopg.Connection, run: FinishedRun,
                     row: dict[str, Any] | None) -> str:
    """manual (cli), schedule "nightly" (daily), safety backup before a restore, upload."""
    config = run.run_config
    backup_type = (row or {}).get("backup_type") or find_in_config(config, "backup_type")
    trigger = (row or {}).get("trigger") or find_in_config(config, "trigger") or ""
    if backup_type == "scheduled" or run.tags.get("dagster/schedule_name"):
        schedule_id = (row or {}).get("schedule_id") or find_in_config(config, "schedule_id")
        found = None
        if schedule_id:
            found = _cursor(conn).execute(
                "SELECT name, frequency FROM backup.backup_schedules WHERE id::text = %s",
                (str(schedule_id),),
            ).fetchone()
        if found:
            return f'schedule "{found["name"]}" ({found["frequency"]})'
        name = trigger.removeprefix("schedule:") if trigger.startswith("schedule:") else \
            run.tags.get("dagster/schedule_name") or trigger or "unknown"
        return f'schedule "{name}"'
    if backup_type == "safety":
        return "safety backup before a restore"
    if backup_type == "uploaded" or trigger == "upload":
        return "upload"
    if backup_type == "manual":
        return f"manual ({trigger})" if trigger else "manual"
    return trigger or "unknown"


def backup_facts(conn: psycopg.Connection, run: FinishedRun) -> BackupFacts:
    row = _history_row(conn, "dagster_run_id = %s", run.run_id)
    return BackupFacts(row=row, trigger=describe_trigger(conn, run, row))


def _restore_row(conn: psycopg.Connection, run_id: str) -> dict[str, Any] | None:
    """The run's restore_runs row as a dict of whatever columns the table has; None when the
    table (or its dagster_run_id column) does not exist."""
    if conn.execute("SELECT to_regclass('backup.restore_runs')").fetchone()[0] is None:
        return None
    try:
        with conn.transaction():
            found = conn.execute(
                "SELECT to_jsonb(r) FROM backup.restore_runs r WHERE r.dagster_run_id = %s"
                " LIMIT 1", (run_id,),
            ).fetchone()
    except psycopg.errors.UndefinedColumn:
        return None
    return found[0] if found else None


def _is_dry_run(value: Any) -> bool:
    if value is None:
        return True  # CONTRACT.md: restore_job's dry_run defaults to true (preview only)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "no", "off", "0")
    return bool(value)


def restore_facts(conn: psycopg.Connection, run: FinishedRun) -> RestoreFacts:
    row = _restore_row(conn, run.run_id)
    config = run.run_config
    if row is not None:
        dry_run_value = row.get("dry_run", find_in_config(config, "dry_run"))
        backup_id = row.get("backup_id") or find_in_config(config, "backup_id")
        safety_id = row.get("safety_backup_id")
        source = "backup.restore_runs"
    else:
        dry_run_value = find_in_config(config, "dry_run")
        backup_id = find_in_config(config, "backup_id")
        safety_id = find_in_config(config, "safety_backup_id") or \
            run.tags.get("backup_pipeline/safety_backup_id")
        source = "run config"
    row = row or {}
    return RestoreFacts(
        dry_run=_is_dry_run(dry_run_value),
        backup_id=str(backup_id) if backup_id else None,
        backup=backup_by_id(conn, backup_id),
        safety_backup_id=str(safety_id) if safety_id else None,
        safety=backup_by_id(conn, safety_id),
        state=row.get("state"),
        step=row.get("step"),
        error=row.get("error_message"),
        source=source,
    )


def drilled_backup(conn: psycopg.Connection, run: FinishedRun) -> dict[str, Any] | None:
    """The backup a drill_job run was given (None: it drilled the newest completed one)."""
    return backup_by_id(conn, find_in_config(run.run_config, "backup_id"))
