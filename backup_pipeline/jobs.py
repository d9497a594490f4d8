"""Dagster jobs. In-process executor: a subprocess per step would cost about 2 s each."""

import os

import dagster as dg

from backup_pipeline.errors import ConfigError
from backup_pipeline.ops.backup import (
    build_archive,
    collect_documents,
    dump_database,
    record_backup,
    start_backup,
    write_manifest,
)
from backup_pipeline.ops.drill import run_restore_drill
from backup_pipeline.ops.offsite import offsite_catch_up, offsite_copy
from backup_pipeline.ops.restore import (
    finish_restore,
    load_database,
    preview_restore,
    safety_backup,
    start_restore,
    swap_in,
    verify_archive,
)
from backup_pipeline.ops.retention import retention_sweep, schedule_retention
from backup_pipeline.postgres import database_name

KIND_TAG = "backup_pipeline/kind"
DATABASE_TAG = "backup_pipeline/database"


def run_tags(kind: str) -> dict[str, str]:
    """Tags every job of ours carries onto its runs. The run queue (deploy/dagster.yaml) allows
    one run per DATABASE_TAG value and one run with kind `restore`, so runs that touch the same
    database (backup, restore, retention) wait for each other instead of overlapping."""
    try:
        database = database_name(os.environ.get("DATABASE_URL", ""))
    except ConfigError:
        database = ""
    return {KIND_TAG: kind, DATABASE_TAG: database or "unset"}


@dg.job(
    executor_def=dg.in_process_executor,
    description="One backup of DATABASE_URL and DOCUMENTS_DIR into a verified .tar.gz in "
    "BACKUP_DIR: manual, scheduled or safety (before a restore).",
    tags=run_tags("backup"),
)
def backup_job():
    plan, _skipped = start_backup()
    documents = collect_documents(plan)  # on a background thread while pg_dump runs
    dump = dump_database(plan, documents)
    manifest = write_manifest(plan, dump, documents)
    archive = build_archive(plan, manifest)
    backup = record_backup(plan, manifest, archive)
    schedule_retention(backup)
    offsite_copy(backup)  # never fails the run: a failed copy is recorded and retried later


@dg.job(
    executor_def=dg.in_process_executor,
    description="Every schedule keeps its newest `retention_count` completed scheduled backups; "
    "older ones are deleted (file and row). Reports missing archives and unknown files.",
    tags=run_tags("retention"),
)
def retention_job():
    retention_sweep()


@dg.job(
    executor_def=dg.in_process_executor,
    description="Offsite copies that are due (failed, left to the catch-up, or missing), or the "
    "backups given; then deletes the copies of deleted backups whose Object Lock ran out.",
    tags=run_tags("offsite"),
)
def offsite_job():
    offsite_catch_up()


@dg.job(
    executor_def=dg.in_process_executor,
    description="Restore a backup. Verifies the archive first. dry_run (default true) only "
    "previews what would change; dry_run false takes a safety backup, then swaps in the "
    "database and documents atomically.",
    tags=run_tags("restore"),
)
def restore_job():
    preview, execute = verify_archive(start_restore())
    preview_restore(preview)
    finish_restore(swap_in(load_database(safety_backup(execute))))


@dg.job(
    executor_def=dg.in_process_executor,
    description="Restore drill: a backup (default the newest completed one) restored into a "
    "scratch database and folder and compared with its manifest; records the restore_drill "
    "check. Never touches the live database or documents, so it waits for no backup.",
    tags={KIND_TAG: "drill"},  # no database tag: it must not queue behind (or hold up) backups
)
def drill_job():
    run_restore_drill()
