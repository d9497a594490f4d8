"""The first step of a restore: record it (the one restore slot) and sweep what crashed
restores left behind."""

from __future__ import annotations

import shutil
from contextlib import suppress

import psycopg

from backup_pipeline.backup.inventory import archive_path
from backup_pipeline.backup.service import describe_error
from backup_pipeline.catalog import history
from backup_pipeline.errors import ConfigError
from backup_pipeline.postgres import connect, database_name
from backup_pipeline.restore import database, runs
from backup_pipeline.restore.errors import RestoreBusyError, RestoreError
from backup_pipeline.restore.plan import RestorePlan, make_plan
from backup_pipeline.restore.settle import (
    RESTORE_STAGING,
    reopening,
    settle_crashed_documents,
)
from backup_pipeline.settings import Settings


def claim(settings: Settings, backup_id: str, *, dry_run: bool = True, scope: str = "both",
          trigger: str = "direct", run_id: str | None = None,
          alive: runs.Alive = runs._always_alive, restore_id: str | None = None) -> RestorePlan:
    """Record the restore as running; refuse if another restore or a backup is running.

    `alive(run_id)` tells whether a Dagster run is still going; rows of ended runs are reaped."""
    if scope not in runs.SCOPES:
        raise ConfigError(f"unknown restore scope {scope!r}; expected one of {runs.SCOPES}")
    backup = reopening(settings, lambda: history.get(settings.database_url, backup_id))
    if backup["status"] != "completed":
        raise RestoreError(f"backup {backup['id']} is {backup['status']}, not completed: "
                           "it cannot be restored")
    path = archive_path(settings, backup)
    if path is None or not path.is_file():
        raise RestoreError(f"the archive of backup {backup['id']} ({backup.get('file_name')}) "
                           f"is missing in {settings.backup_dir}")
    with connect(settings.database_url) as conn:
        if not runs._has_table(conn):
            raise ConfigError("the catalog has no restore table: run 'backup-pipeline migrate'")
    runs.reap(settings.database_url, alive)
    if not dry_run:
        busy = runs.running_backups(settings.database_url)
        if busy:
            raise RestoreBusyError(
                f"a restore is refused while backup {busy[0]['id']} ({busy[0]['backup_type']}, "
                f"since {busy[0]['started_at']}) is being written; try again when it has ended")
    row = runs.create(settings.database_url, backup_id=backup["id"], dry_run=dry_run,
                      scope=scope, trigger=trigger, run_id=run_id, restore_id=restore_id)
    plan = make_plan(settings, row, backup, path)
    if not dry_run:
        try:
            settle_crashed_documents(settings, plan.restore_id)
        except Exception as exc:
            message = (f"what an earlier restore left in the documents could not be settled "
                       f"({describe_error(exc)}); see README, Operations")
            runs.fail(settings.database_url, plan.restore_id, message)
            raise RestoreError(message) from exc
        with suppress(OSError, RestoreError, psycopg.Error):
            _sweep_leftovers(settings, plan)
    return plan


def _sweep_leftovers(settings: Settings, plan: RestorePlan) -> None:
    """Remove what restores that crashed left behind (their documents are settled already):
    every other staging folder and sibling database of ours is stale."""
    root = settings.backup_dir / RESTORE_STAGING
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name != plan.restore_id:
                shutil.rmtree(entry, ignore_errors=True)
    live = database_name(settings.database_url)
    with database.admin_connect(settings.database_url) as admin:
        for kind in ("restore", "old"):
            prefix = database.sibling_name(live, kind, "0" * 8)[:-8]
            for (name,) in admin.execute(
                    "SELECT datname FROM pg_database WHERE left(datname, %s) = %s"
                    " AND length(datname) = %s AND right(datname, 8) ~ '^[0-9a-f]{8}$'",
                    (len(prefix), prefix, len(prefix) + 8)).fetchall():
                if name not in (plan.new_database, plan.old_database):
                    database.drop(admin, name)
