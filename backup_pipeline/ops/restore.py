"""The steps of restore_job. The work is in backup_pipeline.restore.service.

A dry run (the default) ends after `preview_restore`; a real restore takes the branch
safety_backup -> load_database -> swap_in -> finish_restore. The safety backup is a real
backup_job run (nested, on the same instance and resources), so it is listed with its own run,
asset materialization and notifications like any other backup.
"""

import json
from typing import Literal

import dagster as dg
from pydantic import Field

from backup_pipeline.catalog import history
from backup_pipeline.ops.backup import _progress, _settings
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.resources.storage import StorageResource
from backup_pipeline.restore import preview as preview_mod
from backup_pipeline.restore import service
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.verify import CheckedArchive

# the safety backup's run logs to the instance like any run, not to this run's console
NESTED_RUN_LOGGERS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class RestoreConfig(dg.Config):
    backup_id: str = Field(description="Id of the backup to restore (see `backup-pipeline list`).")
    dry_run: bool = Field(
        default=True,
        description="Only preview: verify the archive and report what would change; nothing "
        "is changed and no safety backup is taken. Set to false to restore.",
    )
    scope: Literal["database", "documents", "both"] = Field(
        default="both", description="What to restore: the database, the documents, or both."
    )
    trigger: str = Field(default="ui", description="Who asked: ui, cli, api.")
    restore_id: str | None = Field(
        default=None, description="A UUID for the restore's status row; set by the admin API "
        "so it can answer with the id before the run starts. Leave empty otherwise.",
    )


@dg.op(description="Record the restore (refused while another restore or a backup runs).")
def start_restore(
    context: dg.OpExecutionContext, config: RestoreConfig, database: DatabaseResource,
    storage: StorageResource,
) -> service.RestorePlan:
    plan = service.claim(
        _settings(database, storage), config.backup_id, dry_run=config.dry_run,
        scope=config.scope, trigger=config.trigger, run_id=context.run_id,
        restore_id=config.restore_id,
    )
    context.add_output_metadata({"restore_id": plan.restore_id, "backup_id": plan.backup_id,
                                 "dry_run": plan.dry_run, "scope": plan.scope,
                                 "archive": plan.archive_path})
    return plan


@dg.op(
    description="Check the whole archive (its sha256 against the catalog, sizes, every "
    "member's sha256, complete dump, no psql meta-commands); the live system is not touched. "
    "Once the archive's sha256 matches the catalog's, a real restore meanwhile starts loading "
    "a new database beside the live one, which only load_database commits.",
    out={"preview": dg.Out(is_required=False), "execute": dg.Out(is_required=False)},
)
def verify_archive(
    context: dg.OpExecutionContext, plan: service.RestorePlan, database: DatabaseResource,
    storage: StorageResource,
):
    checked = service.verify(_settings(database, storage), plan, _progress(context))
    metadata = {"members": checked.members, "bytes_checked": checked.bytes_checked,
                "sql_bytes": checked.sql_bytes, "tables": len(checked.tables),
                "documents": checked.documents}
    branch = "preview" if plan.dry_run else "execute"
    yield dg.Output((plan, checked), branch, metadata=metadata)


@dg.op(description="Report what the restore would change (rows per table, documents per "
       "user, warnings). Changes nothing.")
def preview_restore(
    context: dg.OpExecutionContext, verified: tuple[service.RestorePlan, CheckedArchive],
    database: DatabaseResource, storage: StorageResource,
) -> dict:
    plan, checked = verified
    result = service.make_preview(_settings(database, storage), plan, checked)
    for warning in result["warnings"]:
        context.log.warning(warning)
    context.add_output_metadata({
        "preview": dg.MetadataValue.md(preview_mod.markdown(result)),
        "preview_json": dg.MetadataValue.json(json.loads(json.dumps(result, default=str))),
        "warnings": len(result["warnings"]),
    })
    return result


@dg.op(description="Take a safety backup of the current database and documents (a nested "
       "backup_job run of type safety) before anything is changed.")
def safety_backup(
    context: dg.OpExecutionContext, verified: tuple[service.RestorePlan, CheckedArchive],
    database: DatabaseResource, storage: StorageResource,
) -> tuple[service.RestorePlan, CheckedArchive]:
    plan, _ = verified
    settings = _settings(database, storage)

    def run_backup_job() -> dict:
        from backup_pipeline.definitions import defs
        from backup_pipeline.jobs import backup_job

        # this run's own database and storage, the definitions' resources for the rest
        resources = {**defs.resources, "database": database, "storage": storage}

        result = backup_job.execute_in_process(
            run_config={**NESTED_RUN_LOGGERS, "ops": {"start_backup": {"config": {
                "backup_type": "safety", "trigger": "restore",
                "note": f"before restore {plan.restore_id}"}}}},
            instance=context.instance,
            resources=resources,
            tags={"backup_pipeline/trigger": "restore",
                  "backup_pipeline/restore_id": plan.restore_id,
                  "backup_pipeline/parent_run_id": context.run_id},
            raise_on_error=False,
        )
        context.log.info(f"safety backup run {result.run_id}: "
                         f"{'succeeded' if result.success else 'failed'}")
        row = history.find_by_run(settings.database_url, result.run_id)
        if not result.success or row is None:
            reason = (row or {}).get("error_message") or "the backup run failed"
            raise RestoreError(f"the safety backup failed: {reason} (Dagster run "
                               f"{result.run_id})")
        return row

    safety_id = service.safety_backup(settings, plan, run_backup_job)
    context.add_output_metadata({"safety_backup_id": safety_id})
    return verified


@dg.op(description="Finish loading the new database beside the live one (psql, one "
       "transaction, the dump streamed from the archive through the meta-command scanner) and "
       "staging the documents beside DOCUMENTS_DIR; everything is checked again on the way, and "
       "psql commits only if all of it checks out (the live database is not touched).")
def load_database(
    context: dg.OpExecutionContext, verified: tuple[service.RestorePlan, CheckedArchive],
    database: DatabaseResource, storage: StorageResource,
) -> service.RestorePlan:
    plan, checked = verified
    name = service.load_database(_settings(database, storage), plan, checked, _progress(context))
    context.add_output_metadata({"new_database": name or "(documents only)",
                                 "sql_bytes": checked.sql_bytes})
    return plan


@dg.op(description="Copy the catalog across, end other sessions, swap documents and database "
       "in (one rename transaction); any failure puts everything back.")
def swap_in(
    context: dg.OpExecutionContext, plan: service.RestorePlan, database: DatabaseResource,
    storage: StorageResource,
) -> service.RestorePlan:
    result = service.swap(_settings(database, storage), plan)
    context.add_output_metadata({"sessions_ended": result["sessions_ended"]})
    return plan


@dg.op(description="Drop the previous database and documents; mark the restore completed.")
def finish_restore(
    context: dg.OpExecutionContext, plan: service.RestorePlan, database: DatabaseResource,
    storage: StorageResource,
) -> dict:
    row = service.finish(_settings(database, storage), plan)
    for warning in row["warnings"]:
        context.log.warning(warning)
    context.add_output_metadata({
        "restore_id": row["id"], "backup_id": row["backup_id"],
        "safety_backup_id": row["safety_backup_id"] or "", "scope": row["scope"],
        "warnings": len(row["warnings"]),
    })
    return row

