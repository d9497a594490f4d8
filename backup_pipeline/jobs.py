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
from backup_pipeline.ops.restore import (
    finish_restore,
    load_database,
    preview_restore,
    safety_backup,
    start_restore,
    swap_in,
    verify_archive,
)


@dg.job(
    executor_def=dg.in_process_executor,
    description="One backup of DATABASE_URL and DOCUMENTS_DIR into a verified .tar.gz in "
    "BACKUP_DIR: manual, scheduled or safety (before a restore).",
    tags={"backup_pipeline/kind": "backup"},
)
def backup_job():
    plan = start_backup()
    dump = dump_database(plan)
    documents = collect_documents(plan)
    manifest = write_manifest(plan, dump, documents)
    archive = build_archive(plan, manifest, dump, documents)
    record_backup(plan, dump, documents, archive)


@dg.job(
    executor_def=dg.in_process_executor,
    description="Restore a backup. Verifies the archive first. dry_run (default true) only "
    "previews what would change; dry_run false takes a safety backup, then swaps in the "
    "database and documents atomically.",
    tags={"backup_pipeline/kind": "restore"},
)
def restore_job():
    preview, execute = verify_archive(start_restore())
    preview_restore(preview)
    finish_restore(swap_in(load_database(safety_backup(execute))))
