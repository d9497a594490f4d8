"""Backup schedules as catalog rows (`backup.backup_schedules`): validated before anything is
written, so bad input changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from backup_pipeline.catalog.history import _jsonable, check_migrated
from backup_pipeline.errors import ConfigError, NotFoundError
from backup_pipeline.postgres import connect

# The seed's frequencies and crons (evaluated in BACKUP_TIMEZONE).
FREQUENCIES = {
    "hourly": "0 * * * *",
    "daily": "0 3 * * *",
    "weekly": "0 3 * * 0",
    "monthly": "0 3 1 * *",
}
MAX_NAME = 100
MAX_RETENTION = 100_000

_COLUMNS = (
    "s.id, s.name, s.frequency, s.retention_count, s.is_enabled, s.last_run_at,"
    " s.last_backup_id, s.created_at, s.updated_at"
)


def parse_id(text: str) -> str:
    try:
        return str(uuid.UUID(str(text).strip()))
    except ValueError:
        raise NotFoundError(f"no schedule with id {text!r} (ids are UUIDs)") from None


def validate_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise ConfigError("a schedule name must not be empty")
    if len(name) > MAX_NAME:
        raise ConfigError(f"a schedule name must be at most {MAX_NAME} characters")
    return name


def validate_frequency(frequency: str) -> str:
    value = str(frequency).strip().lower()
    if value not in FREQUENCIES:
        raise ConfigError(f"unknown frequency {frequency!r}; expected one of "
                          f"{', '.join(FREQUENCIES)}")
    return value


def validate_retention(retention: int | str) -> int:
    try:
        value = int(str(retention).strip())
    except ValueError:
        raise ConfigError(f"retention must be a whole number of backups to keep, not "
                          f"{retention!r}") from None
    if value < 1:
        raise ConfigError(f"retention must be at least 1 (got {value}): a schedule always "
                          "keeps its newest backup")
    if value > MAX_RETENTION:
        raise ConfigError(f"retention must be at most {MAX_RETENTION} (got {value})")
    return value


def _with_cron(row: dict[str, Any]) -> dict[str, Any]:
    out = _jsonable(row)
    out["cron"] = FREQUENCIES[out["frequency"]]
    return out


def _write(database_url: str, sql: str, params: dict[str, Any], name: str | None
           ) -> dict[str, Any] | None:
    """Run one INSERT/UPDATE ... RETURNING; a duplicate name becomes a one-line error."""
    try:
        with connect(database_url) as conn:
            check_migrated(conn)
            row = conn.cursor(row_factory=dict_row).execute(sql, params).fetchone()
    except psycopg.errors.UniqueViolation:
        raise ConfigError(f"a schedule named {name!r} already exists") from None
    return _with_cron(row) if row else None


def create(database_url: str, *, name: str, frequency: str, retention: int | str,
           enabled: bool = True) -> dict[str, Any]:
    params = {"name": validate_name(name), "frequency": validate_frequency(frequency),
              "retention": validate_retention(retention), "enabled": enabled}
    return _write(
        database_url,
        "INSERT INTO backup.backup_schedules AS s"
        " (name, frequency, retention_count, is_enabled)"
        " VALUES (%(name)s, %(frequency)s, %(retention)s, %(enabled)s)"
        f" RETURNING {_COLUMNS}",
        params, params["name"],
    )


def update(database_url: str, schedule_id: str, *, name: str | None = None,
           frequency: str | None = None, retention: int | str | None = None,
           enabled: bool | None = None) -> dict[str, Any]:
    """Change only the given fields; all are validated before the one UPDATE."""
    schedule_id = parse_id(schedule_id)
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = validate_name(name)
    if frequency is not None:
        fields["frequency"] = validate_frequency(frequency)
    if retention is not None:
        fields["retention_count"] = validate_retention(retention)
    if enabled is not None:
        fields["is_enabled"] = bool(enabled)
    if not fields:
        raise ConfigError("nothing to update: give --name, --frequency, --retention, "
                          "--enabled or --disabled")
    assignments = ", ".join(f"{column} = %({column})s" for column in sorted(fields))
    row = _write(
        database_url,
        f"UPDATE backup.backup_schedules AS s SET {assignments}, updated_at = now()"
        f" WHERE id = %(id)s RETURNING {_COLUMNS}",
        {**fields, "id": schedule_id}, fields.get("name"),
    )
    if row is None:
        raise NotFoundError(f"no schedule with id {schedule_id}")
    return row


def toggle(database_url: str, schedule_id: str) -> dict[str, Any]:
    schedule_id = parse_id(schedule_id)
    row = _write(
        database_url,
        "UPDATE backup.backup_schedules AS s SET is_enabled = NOT is_enabled,"
        f" updated_at = now() WHERE id = %(id)s RETURNING {_COLUMNS}",
        {"id": schedule_id}, None,
    )
    if row is None:
        raise NotFoundError(f"no schedule with id {schedule_id}")
    return row


def delete(database_url: str, schedule_id: str) -> dict[str, Any]:
    """Remove the schedule; its backups stay (no longer tied to a schedule, so retention never
    deletes them)."""
    row = get(database_url, schedule_id)
    with connect(database_url) as conn:
        kept = conn.execute(
            "SELECT count(*) FROM backup.backup_history WHERE schedule_id = %s",
            (row["id"],),
        ).fetchone()[0]
        conn.execute("DELETE FROM backup.backup_schedules WHERE id = %s", (row["id"],))
    return {"deleted": row["id"], "name": row["name"], "backups_kept": kept}


def get(database_url: str, schedule_id: str) -> dict[str, Any]:
    schedule_id = parse_id(schedule_id)
    with connect(database_url) as conn:
        check_migrated(conn)
        row = conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_COLUMNS} FROM backup.backup_schedules s WHERE s.id = %s", (schedule_id,)
        ).fetchone()
    if row is None:
        raise NotFoundError(f"no schedule with id {schedule_id}")
    return _with_cron(row)


def list_all(database_url: str) -> list[dict[str, Any]]:
    """Every schedule with the number of completed backups it currently keeps."""
    with connect(database_url) as conn:
        check_migrated(conn)
        rows = conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_COLUMNS}, (SELECT count(*) FROM backup.backup_history h"
            "   WHERE h.schedule_id = s.id AND h.backup_type = 'scheduled'"
            "   AND h.status = 'completed') AS completed_backups"
            " FROM backup.backup_schedules s ORDER BY s.name"
        ).fetchall()
    return [_with_cron(r) for r in rows]


def enabled_for(database_url: str, frequency: str) -> list[dict[str, Any]]:
    """What a schedule tick of this frequency must start: its enabled rows, in a stable order."""
    frequency = validate_frequency(frequency)
    with connect(database_url) as conn:
        check_migrated(conn)
        rows = conn.cursor(row_factory=dict_row).execute(
            f"SELECT {_COLUMNS} FROM backup.backup_schedules s"
            " WHERE s.frequency = %s AND s.is_enabled ORDER BY s.name, s.id",
            (frequency,),
        ).fetchall()
    return [_with_cron(r) for r in rows]
