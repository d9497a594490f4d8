"""The databases a restore makes beside the live one, and which of them may be dropped.

A restore creates `<live>_restore_<id>` and renames the live database to `<live>_old_<id>`.
Each name is recorded in `backup.restore_databases` before the database is created or renamed,
and only recorded databases are ever dropped: an operator's own `<db>_old_20240101`, or any
database that merely matches the pattern, is never touched.

Which catalog holds a record follows the swap: the new database's name goes into the live
catalog before CREATE DATABASE; the old name goes into the new database's catalog (after the
catalog is copied there, before the rename), so it is in the live catalog exactly when the
rename has committed, and is dropped with the new database when it has not.
"""

from __future__ import annotations

import psycopg

from backup_pipeline.catalog import liveness
from backup_pipeline.postgres import connect, database_name
from backup_pipeline.restore import database


def has_table(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('backup.restore_databases')").fetchone()[0] \
        is not None


def record(url: str, name: str, restore_id: str) -> None:
    """Note in the catalog of database `url` that restore `restore_id` makes `name`."""
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO backup.restore_databases (name, restore_id) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET restore_id = excluded.restore_id,"
            " recorded_at = now()", (name, restore_id))


def forget(url: str, names: list[str]) -> None:
    with connect(url) as conn:
        conn.execute("DELETE FROM backup.restore_databases WHERE name = ANY(%s)", (names,))


def drop_own(url: str, name: str, restore_id: str) -> None:
    """Drop `name` if the catalog records it as restore `restore_id`'s, then forget it."""
    with connect(url) as conn:
        ours = conn.execute(
            "SELECT 1 FROM backup.restore_databases WHERE name = %s AND restore_id = %s",
            (name, restore_id)).fetchone() is not None
    if ours and name != database_name(url):
        with database.admin_connect(url) as admin:
            database.drop(admin, name)
    if ours:
        forget(url, [name])


def sweep(url: str, only: list[str] | None = None) -> list[str]:
    """Drop the recorded databases of restores that are over (a crashed one's leftovers) and
    of restore drills whose process is gone, and forget their records (only those of the
    restores or drills in `only`, when given); returns the names dropped (or already gone)."""
    live = database_name(url)
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT name, restore_id::text FROM backup.restore_databases WHERE restore_id NOT IN"
            " (SELECT id FROM backup.restore_runs WHERE state IN ('pending', 'running'))"
            " AND (%s::text[] IS NULL OR restore_id::text = ANY(%s::text[]))"
            " ORDER BY name", (only, only)).fetchall()
    owners = sorted({owner for _, owner in rows})
    gone = set(liveness.abandoned(url, owners, kind="drill")) if owners else set()
    names = [name for name, owner in rows if owner in gone]  # a drill still running keeps its
    if not names:
        return []
    with database.admin_connect(url) as admin:
        for name in names:
            if name != live:
                database.drop(admin, name)
            forget(url, [name])
    return names
