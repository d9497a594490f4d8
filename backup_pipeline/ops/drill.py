"""The step of drill_job. The work is in backup_pipeline.drills."""

import dagster as dg
from pydantic import Field

from backup_pipeline import checks
from backup_pipeline.drills.service import run_drill
from backup_pipeline.ops.backup import _progress, _settings
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.resources.storage import StorageResource


class DrillConfig(dg.Config):
    backup_id: str | None = Field(
        default=None, description="Id of the backup to drill; empty: the newest completed one.")


@dg.op(description="Restore the backup into a scratch database and folder, compare every "
       "table's rows and every document's sha256 with the manifest, time it, drop the scratch "
       "copies; records the restore_drill check on motovaultpro_backup. A failed drill fails "
       "the run (and notifies).")
def run_restore_drill(context: dg.OpExecutionContext, config: DrillConfig,
                      database: DatabaseResource, storage: StorageResource) -> dict:
    result = run_drill(_settings(database, storage), config.backup_id or None,
                       progress=_progress(context))
    context.log_event(checks.drill_evaluation(result))
    if not result.ok:
        raise dg.Failure(description=result.description,
                         metadata={"result": dg.MetadataValue.json(result.as_json())})
    context.log.info(result.description)
    return result.as_json()
