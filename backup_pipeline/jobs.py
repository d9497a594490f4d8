"""Dagster jobs. In-process executor: a subprocess per step would cost about 2 s each."""

import dagster as dg

from backup_pipeline.ops.backup import (
    build_archive,
    collect_documents,
    dump_database,
    record_backup,
    start_backup,
    write_manifest,
)
from backup_pipeline.ops.retention import retention_sweep, schedule_retention


@dg.job(
    executor_def=dg.in_process_executor,
    description="One backup of DATABASE_URL and DOCUMENTS_DIR into a verified .tar.gz in "
    "BACKUP_DIR: manual, scheduled or safety (before a restore).",
    tags={"backup_pipeline/kind": "backup"},
)
def backup_job():
    plan, _skipped = start_backup()
    dump = dump_database(plan)
    documents = collect_documents(plan)
    manifest = write_manifest(plan, dump, documents)
    archive = build_archive(plan, manifest, dump, documents)
    backup = record_backup(plan, dump, documents, archive)
    schedule_retention(backup)


@dg.job(
    executor_def=dg.in_process_executor,
    description="Every schedule keeps its newest `retention_count` completed scheduled backups; "
    "older ones are deleted (file and row). Reports missing archives and unknown files.",
    tags={"backup_pipeline/kind": "retention"},
)
def retention_job():
    retention_sweep()
