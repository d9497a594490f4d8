"""Versioned, idempotent migrations of the catalog schema.

Each `migrations/NNN_name.sql` runs once, in its own transaction, recorded in
`backup.schema_migrations`; an advisory lock lets several processes migrate at once safely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from backup_pipeline.errors import ConfigError
from backup_pipeline.postgres import connect

SCHEMA = "backup"
_LOCK_KEY = 0x6261636B7570  # "backup"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    return list(_available())


@cache
def _available() -> tuple[Migration, ...]:
    folder = resources.files("backup_pipeline.catalog") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return tuple(sorted(found, key=lambda m: m.version))


def applied_versions(conn) -> set[int]:
    exists = conn.execute("SELECT to_regclass('backup.schema_migrations')").fetchone()[0]
    if exists is None:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM backup.schema_migrations")}


def refuse_newer(conn) -> None:
    """A catalog that a newer backup_pipeline migrated may mean things this code does not
    know: refuse it rather than misread or downgrade it."""
    if conn.execute("SELECT to_regclass('backup.schema_migrations')").fetchone()[0] is None:
        return
    latest = _available()[-1]
    row = conn.execute("SELECT version, name FROM backup.schema_migrations WHERE version > %s"
                       " ORDER BY version DESC LIMIT 1", (latest.version,)).fetchone()
    if row is not None:
        raise ConfigError(f"the catalog is at version {row[0]} ({row[0]:03d}_{row[1]}) but this "
                          f"backup_pipeline knows up to {latest.version} "
                          f"({latest.version:03d}_{latest.name}): upgrade backup_pipeline")


def migrate(database_url: str) -> list[str]:
    """Apply what is missing; return the names applied now (empty when up to date)."""
    done: list[str] = []
    with connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS backup.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            refuse_newer(conn)
            have = applied_versions(conn)
            for migration in available():
                if migration.version in have:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO backup.schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                done.append(f"{migration.version:03d}_{migration.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done


def pending(database_url: str) -> list[str]:
    with connect(database_url) as conn:
        refuse_newer(conn)
        have = applied_versions(conn)
    return [f"{m.version:03d}_{m.name}" for m in available() if m.version not in have]
