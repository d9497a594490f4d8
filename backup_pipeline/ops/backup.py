"""The steps of backup_job. The work is in backup_pipeline.backup.service."""

from typing import Literal

import dagster as dg
from pydantic import Field

from backup_pipeline.backup import service
from backup_pipeline.backup.dump import DumpResult
from backup_pipeline.progress import Progress
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.resources.storage import StorageResource
from backup_pipeline.settings import Settings

BACKUP_ASSET = dg.AssetKey("motovaultpro_backup")


class BackupConfig(dg.Config):
    backup_type: Literal["manual", "scheduled", "safety"] = Field(
        default="manual", description="Recorded in the catalog and the manifest."
    )
    trigger: str = Field(
        default="ui", description="Who asked: ui, cli, api, schedule:<name>, restore, upload."
    )
    note: str | None = Field(default=None, description="Free text shown in the backup list.")
    schedule_id: str | None = Field(default=None, description="Set by backup schedules.")


def _settings(database: DatabaseResource, storage: StorageResource) -> Settings:
    return storage.settings(database.url)


def _progress(context: dg.OpExecutionContext) -> Progress:
    return Progress(interval=5.0, listeners=[lambda p: context.log.info(p.describe())])


@dg.op(description="Record the backup as in progress and prepare its staging directory.")
def start_backup(
    context: dg.OpExecutionContext, config: BackupConfig, database: DatabaseResource,
    storage: StorageResource,
) -> service.BackupPlan:
    plan = service.begin(
        _settings(database, storage), backup_type=config.backup_type, trigger=config.trigger,
        schedule_id=config.schedule_id, note=config.note, run_id=context.run_id,
    )
    context.add_output_metadata({"backup_id": plan.backup_id, "database": database.describe()})
    return plan


@dg.op(description="Start archiving every document under DOCUMENTS_DIR (each hashed as it is "
       "read) on a background thread; dump_database runs meanwhile, write_manifest waits for it.")
def collect_documents(
    context: dg.OpExecutionContext, plan: service.BackupPlan, database: DatabaseResource,
    storage: StorageResource,
) -> service.DocumentsStarted:
    settings = _settings(database, storage)
    started = service.start_documents(settings, plan)
    context.add_output_metadata({"documents_dir": str(settings.documents_dir)})
    return started


@dg.op(description="pg_dump (plain, schema backup excluded) through ISA-L gzip to staging, "
       "while the documents are archived; stops early if they fail.")
def dump_database(
    context: dg.OpExecutionContext, plan: service.BackupPlan,
    documents: service.DocumentsStarted, database: DatabaseResource, storage: StorageResource,
) -> DumpResult:
    result = service.dump(_settings(database, storage), plan, _progress(context))
    context.add_output_metadata({
        "dump_bytes": result.size, "sql_bytes": result.sql_bytes,
        "server_version": result.server_version, "pg_dump_version": result.pg_dump_version,
        "seconds": round(result.seconds, 3),
    })
    return result


@dg.op(description="Wait for the documents, then write manifest.json: versions, and every "
       "member's path, size and sha256.")
def write_manifest(
    context: dg.OpExecutionContext, plan: service.BackupPlan, dump: DumpResult,
    documents: service.DocumentsStarted, database: DatabaseResource, storage: StorageResource,
) -> service.ManifestResult:
    settings = _settings(database, storage)
    docs = service.finish_documents(settings, plan)
    for skipped in docs.skipped:
        context.log.warning(f"document not archived: {skipped}")
    path = service.write_manifest(settings, plan, dump, docs)
    context.add_output_metadata({
        "documents": docs.count, "documents_bytes": docs.bytes,
        "skipped": len(docs.skipped), "documents_seconds": round(docs.seconds, 3),
    })
    return service.ManifestResult(path, dump, docs)


@dg.op(description="Assemble the .tar.gz, fsync and verify it, then give it its final name.")
def build_archive(
    context: dg.OpExecutionContext, plan: service.BackupPlan, manifest: service.ManifestResult,
    database: DatabaseResource, storage: StorageResource,
) -> service.ArchiveResult:
    archive = service.assemble(_settings(database, storage), plan, manifest.path, manifest.dump,
                               manifest.documents, _progress(context))
    context.add_output_metadata({"archive": archive.file_name, "archive_bytes": archive.size,
                                 "sha256": archive.sha256})
    return archive


@dg.op(description="Mark the backup completed in the catalog and materialize its asset.")
def record_backup(
    context: dg.OpExecutionContext, plan: service.BackupPlan, manifest: service.ManifestResult,
    archive: service.ArchiveResult, database: DatabaseResource, storage: StorageResource,
) -> dict:
    row = service.record(_settings(database, storage), plan, manifest.dump, manifest.documents,
                         archive)
    context.log_event(dg.AssetMaterialization(
        asset_key=BACKUP_ASSET,
        description=f"{row['backup_type']} backup {row['file_name']}",
        metadata={
            "backup_id": row["id"],
            "archive": row["file_name"],
            "backup_type": row["backup_type"],
            "archive_bytes": dg.MetadataValue.int(row["size_bytes"]),
            "database_bytes": dg.MetadataValue.int(row["database_bytes"]),
            "documents": dg.MetadataValue.int(row["document_count"]),
            "duration_seconds": dg.MetadataValue.float(float(row["duration_seconds"])),
        },
    ))
    return row
