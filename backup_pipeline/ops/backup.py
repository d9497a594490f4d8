"""The steps of backup_job. The work is in backup_pipeline.backup.service."""

from typing import Literal

import dagster as dg
from pydantic import Field

from backup_pipeline.backup import service
from backup_pipeline.backup.documents import DocumentsResult
from backup_pipeline.backup.dump import DumpResult
from backup_pipeline.progress import Progress
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.resources.schedule_lock import ScheduleLockResource
from backup_pipeline.resources.storage import StorageResource
from backup_pipeline.restore import settle
from backup_pipeline.scheduling.guard import Skipped, SlotGuard
from backup_pipeline.settings import Settings

BACKUP_ASSET = dg.AssetKey("motovaultpro_backup")
SKIPPED_TAG = "backup_pipeline/skipped"


class BackupConfig(dg.Config):
    backup_type: Literal["manual", "scheduled", "safety"] = Field(
        default="manual", description="Recorded in the catalog and the manifest."
    )
    trigger: str = Field(
        default="ui", description="Who asked: ui, cli, api, schedule:<name>, restore, upload."
    )
    note: str | None = Field(default=None, description="Free text shown in the backup list.")
    schedule_id: str | None = Field(default=None, description="Set by backup schedules.")
    slot_time: str | None = Field(
        default=None, description="Set by backup schedules: the tick (ISO 8601) this backup is "
        "for. One backup per schedule and slot, however many runs are launched for it."
    )
    backup_id: str | None = Field(
        default=None, description="A UUID for the new backup's catalog row; set by the admin API "
        "so it can answer with the id before the run starts. Leave empty otherwise.",
    )


def _settings(database: DatabaseResource, storage: StorageResource) -> Settings:
    return storage.settings(database.url)


def _progress(context: dg.OpExecutionContext) -> Progress:
    return Progress(interval=5.0, listeners=[lambda p: context.log.info(p.describe())])


def _mark_skipped(context: dg.OpExecutionContext, reason: str) -> None:
    """Tag the run, so the run list and the notification sensors see it made no backup."""
    context.log.info(f"no backup made: {reason}")
    context.instance.add_run_tags(context.run_id, {SKIPPED_TAG: reason[:250]})


def _give_up_slot(context: dg.OpExecutionContext, settings: Settings, plan: service.BackupPlan,
                  reason: str, *paths: str | None) -> None:
    """This run lost its slot to another run: remove what it made and say why."""
    context.log.warning(f"giving up backup {plan.backup_id}: {reason}")
    service.give_up(settings, plan, f"superseded: {reason}", *paths)
    _mark_skipped(context, reason)


@dg.op(
    description="Record the backup as in progress and prepare its staging directory. A "
    "scheduled backup first takes the schedule's lock and claims its slot; without both it "
    "is skipped (output `skipped` holds the reason) and makes nothing.",
    out={
        "plan": dg.Out(service.BackupPlan, is_required=False,
                       description="The backup to make; absent when the run is skipped."),
        "skipped": dg.Out(str, is_required=False,
                          description="Why this scheduled run makes no backup."),
    },
)
def start_backup(
    context: dg.OpExecutionContext, config: BackupConfig, database: DatabaseResource,
    storage: StorageResource, schedule_lock: ScheduleLockResource,
):
    settings = _settings(database, storage)
    metadata: dict = {}
    if config.backup_type == "scheduled":
        settle.ensure_open(settings)  # the slot claim below is the run's first catalog query
        outcome = schedule_lock.acquire(settings, schedule_id=config.schedule_id,
                                        slot_time=config.slot_time, run_id=context.run_id)
        for warning in outcome.warnings:
            context.log.warning(warning)
        metadata["warnings"] = "\n".join(outcome.warnings)
        if isinstance(outcome, Skipped):
            _mark_skipped(context, outcome.reason)
            yield dg.Output(outcome.reason, "skipped",
                            metadata={"reason": outcome.reason, **metadata})
            return
        metadata.update(schedule=outcome.claim.schedule_name,
                        slot_time=outcome.claim.slot_time.isoformat(),
                        lock=outcome.lock.describe() if outcome.lock else "none (slot claim only)",
                        attempt=outcome.claim.attempt)
    plan = service.begin(
        settings, backup_type=config.backup_type, trigger=config.trigger,
        schedule_id=config.schedule_id, note=config.note, run_id=context.run_id,
        backup_id=config.backup_id,
    )
    guard = schedule_lock.current()
    if guard is not None:
        guard.attach(plan.backup_id)
    yield dg.Output(plan, "plan", metadata={"backup_id": plan.backup_id,
                                            "database": database.describe(), **metadata})


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


@dg.op(description="pg_dump (plain, schema backup excluded) through gzip "
       "(BACKUP_COMPRESSION_LEVEL, on BACKUP_COMPRESSION_THREADS threads) to staging, while the "
       "documents are archived; stops early if they fail.")
def dump_database(
    context: dg.OpExecutionContext, plan: service.BackupPlan,
    documents: service.DocumentsStarted, database: DatabaseResource, storage: StorageResource,
) -> DumpResult:
    settings = _settings(database, storage)
    result = service.dump(settings, plan, _progress(context))
    context.add_output_metadata({
        "dump_bytes": result.size, "sql_bytes": result.sql_bytes,
        "compression": settings.compression.describe(),
        "server_version": result.server_version, "pg_dump_version": result.pg_dump_version,
        "seconds": round(result.seconds, 3),
        **({"table_rows": result.contents["table_rows"],
            "large_objects": result.contents["large_objects"]} if result.contents else {}),
    })
    if result.contents_error:
        context.log.warning(result.contents_error)
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


@dg.op(description="Assemble the .tar.gz, fsync and verify it, then give it its final name.",
       out=dg.Out(service.ArchiveResult, is_required=False))
def build_archive(
    context: dg.OpExecutionContext, plan: service.BackupPlan, manifest: service.ManifestResult,
    database: DatabaseResource, storage: StorageResource, schedule_lock: ScheduleLockResource,
):
    settings = _settings(database, storage)
    guard = schedule_lock.current()
    if guard is not None and not guard.renew():
        _give_up_slot(context, settings, plan, "another run took over this slot after this "
                      "run stopped renewing its claim")
        return
    archive = service.assemble(settings, plan, manifest.path, manifest.dump, manifest.documents,
                               _progress(context))
    yield dg.Output(archive, metadata={"archive": archive.file_name,
                                       "archive_bytes": archive.size, "sha256": archive.sha256})


def _record_scheduled(context: dg.OpExecutionContext, settings: Settings, guard: SlotGuard,
                      plan: service.BackupPlan, dump: DumpResult, documents: DocumentsResult,
                      archive: service.ArchiveResult) -> dict | None:
    """Complete backup and slot together, fenced: only the slot's current owner may."""
    with guard.completing() as fence:
        if not fence.owned:
            _give_up_slot(context, settings, plan, fence.reason, archive.path)
            return None
        row = service.record(settings, plan, dump, documents, archive)
        abandoned = fence.complete(row["id"])
    if abandoned:
        context.log.warning(f"marked {abandoned} abandoned backup(s) of this slot failed")
    for warning in guard.warnings:
        context.log.warning(warning)
    return row


@dg.op(description="Mark the backup completed in the catalog and materialize its asset; a "
       "scheduled backup also completes its slot.", out=dg.Out(dict, is_required=False))
def record_backup(
    context: dg.OpExecutionContext, plan: service.BackupPlan, manifest: service.ManifestResult,
    archive: service.ArchiveResult, database: DatabaseResource, storage: StorageResource,
    schedule_lock: ScheduleLockResource,
):
    settings = _settings(database, storage)
    dump, documents = manifest.dump, manifest.documents
    guard = schedule_lock.current()
    if guard is None:
        row = service.record(settings, plan, dump, documents, archive)
    else:
        row = _record_scheduled(context, settings, guard, plan, dump, documents, archive)
        if row is None:
            return
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
    warnings = guard.warnings if guard is not None else []
    yield dg.Output(row, metadata={"backup_id": row["id"], "warnings": "\n".join(warnings)})
