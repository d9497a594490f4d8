"""Everything Dagster loads: `dagster dev -m backup_pipeline.definitions`."""

import dagster as dg

from backup_pipeline.checks import backup_freshness, restore_drill_check
from backup_pipeline.jobs import backup_job, drill_job, offsite_job, restore_job, retention_job
from backup_pipeline.ops.backup import BACKUP_ASSET
from backup_pipeline.ops.offsite import OFFSITE_ASSET
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.resources.offsite import offsite_resource_from_env
from backup_pipeline.resources.schedule_lock import ScheduleLockResource
from backup_pipeline.resources.smtp import smtp_resource_from_env
from backup_pipeline.resources.storage import StorageResource
from backup_pipeline.schedules import all_schedules
from backup_pipeline.sensors import all_sensors

backup_asset = dg.AssetSpec(
    BACKUP_ASSET,
    description="The archives in BACKUP_DIR; each completed backup materializes it with its "
    "size, database size, document count and duration.",
    group_name="backups",
)

offsite_asset = dg.AssetSpec(
    OFFSITE_ASSET,
    description="The age-encrypted copies in OFFSITE_URL; each copy made materializes it with "
    "its object key, size, sha256 and attempts.",
    group_name="backups",
)

defs = dg.Definitions(
    assets=[backup_asset, offsite_asset],
    asset_checks=[backup_freshness, restore_drill_check],
    jobs=[backup_job, restore_job, retention_job, drill_job, offsite_job],
    schedules=all_schedules(),
    sensors=all_sensors,
    resources={
        "database": DatabaseResource(url=dg.EnvVar("DATABASE_URL")),
        "storage": StorageResource(),
        "schedule_lock": ScheduleLockResource(),
        "smtp": smtp_resource_from_env(),
        "offsite": offsite_resource_from_env(),
    },
)
