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


@dg.job(
    executor_def=dg.in_process_executor,
    description="One backup of DATABASE_URL and DOCUMENTS_DIR into a verified .tar.gz in "
    "BACKUP_DIR: manual, scheduled or safety (before a restore).",
    tags={"backup_pipeline/kind": "backup"},
)
def backup_job():
    plan = start_backup()
    documents = collect_documents(plan)  # on a background thread while pg_dump runs
    dump = dump_database(plan, documents)
    manifest = write_manifest(plan, dump, documents)
    archive = build_archive(plan, manifest)
    record_backup(plan, manifest, archive)
