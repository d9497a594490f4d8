"""The first step of a restore: record it (the one restore slot) and sweep what crashed
restores left behind."""

from __future__ import annotations

import shutil
import uuid
from contextlib import suppress

import psycopg

from backup_pipeline.backup.inventory import archive_path
from backup_pipeline.backup.service import describe_error
from backup_pipeline.catalog import history, liveness
from backup_pipeline.errors import ConfigError
from backup_pipeline.postgres import connect
from backup_pipeline.restore import roles, runs, siblings
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
          restore_id: str | None = None) -> RestorePlan:
    """Record the restore as running; refuse if another restore or a backup is running.

    This process holds the restore's liveness lock from before its row exists until the row is
    finished; rows of restores whose process died are reaped first. The check for running
    backups and the insert of the row happen under the start lock that backups take too."""
    if scope not in runs.SCOPES:
        raise ConfigError(f"unknown restore scope {scope!r}; expected one of {runs.SCOPES}")
    url = settings.database_url
    backup = reopening(settings, lambda: history.get(url, backup_id))
    if backup["status"] != "completed":
        raise RestoreError(f"backup {backup['id']} is {backup['status']}, not completed: "
                           "it cannot be restored")
    path = archive_path(settings, backup)
    if path is None or not path.is_file():
        raise RestoreError(f"the archive of backup {backup['id']} ({backup.get('file_name')}) "
                           f"is missing in {settings.backup_dir}")
    with connect(url) as conn:
        if not runs._has_table(conn) or not siblings.has_table(conn):
            raise ConfigError("the catalog's restore tables are missing: run "
                              "'backup-pipeline migrate'")
    runs.reap(url)
    try:
        restore_id = str(uuid.UUID(restore_id)) if restore_id else str(uuid.uuid4())
    except ValueError:
        raise ConfigError(f"restore id {restore_id!r} is not a UUID") from None
    liveness.hold(url, restore_id, kind="restore")  # before the row: never seen unheld
    try:
        with liveness.starting(url):
            if not dry_run:
                busy = runs.running_backups(url, settings.backup_dir)
                if busy:
                    raise RestoreBusyError(
                        f"a restore is refused while backup {busy[0]['id']} "
                        f"({busy[0]['backup_type']}, since {busy[0]['started_at']}) is being "
                        "written; try again when it has ended")
            row = runs.create(url, backup_id=backup["id"], dry_run=dry_run, scope=scope,
                              trigger=trigger, run_id=run_id, restore_id=restore_id)
    except BaseException:
        liveness.release(restore_id, kind="restore")
        raise
    plan = make_plan(settings, row, backup, path)
    if not dry_run:
        try:
            settle_crashed_documents(settings, plan.restore_id)
        except Exception as exc:
            message = (f"what an earlier restore left in the documents could not be settled "
                       f"({describe_error(exc)}); see README, Operations")
            runs.fail(url, plan.restore_id, message)
            raise RestoreError(message) from exc
        with suppress(OSError, RestoreError, psycopg.Error):
            _sweep_leftovers(settings, plan)
        with suppress(RestoreError, psycopg.Error):
            roles.sweep(settings, plan.restore_id)  # after the databases that depend on them
    return plan


def _sweep_leftovers(settings: Settings, plan: RestorePlan) -> None:
    """Remove what restores that crashed left behind (their documents are settled already):
    every other staging folder, and the databases the catalog records as made by a restore
    that is over (an operator's database that merely looks like one of ours stays)."""
    root = settings.backup_dir / RESTORE_STAGING
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name != plan.restore_id:
                shutil.rmtree(entry, ignore_errors=True)
    siblings.sweep(settings.database_url)
