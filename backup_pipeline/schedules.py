"""The Dagster schedules: one per frequency, plus the daily retention sweep.

Each backup schedule's tick reads the enabled catalog schedules of its frequency and asks for
one backup_job run per row; the run itself makes sure only one backup per slot is ever made.
"""

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string  # not exported at the top level

from backup_pipeline.errors import ConfigError
from backup_pipeline.jobs import backup_job, drill_job, retention_job
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.scheduling import catalog, slots

RETENTION_CRON = "0 4 * * *"
DRILL_CRON = "0 5 * * 0"  # Sundays 05:00; DRILL_CRON overrides
SCHEDULE_ID_TAG = "backup_pipeline/schedule_id"
SCHEDULE_NAME_TAG = "backup_pipeline/schedule_name"
SLOT_TIME_TAG = "backup_pipeline/slot_time"


def execution_timezone() -> str:
    name = os.environ.get("BACKUP_TIMEZONE", "").strip() or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"BACKUP_TIMEZONE={name!r} is not a known time zone "
                          "(for example UTC or Europe/Berlin)") from None
    return name


def backup_run_request(row: dict, slot) -> dg.RunRequest:
    slot_text = slots.slot_text(slot)
    return dg.RunRequest(
        run_key=slots.run_key(row["id"], slot),
        run_config={"ops": {"start_backup": {"config": {
            "backup_type": "scheduled", "trigger": f"schedule:{row['name']}",
            "schedule_id": row["id"], "slot_time": slot_text,
        }}}},
        tags={SCHEDULE_ID_TAG: row["id"], SCHEDULE_NAME_TAG: row["name"][:200],
              SLOT_TIME_TAG: slot_text, "backup_pipeline/trigger": "schedule"},
    )


def backup_schedule(frequency: str, timezone: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{frequency}_backup_schedule",
        cron_schedule=catalog.FREQUENCIES[frequency],
        job=backup_job,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"One backup_job run per enabled {frequency} schedule in the catalog "
        "(`backup-pipeline schedules`); at most one backup per schedule and slot.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
        rows = catalog.enabled_for(database.url, frequency)
        if not rows:
            return dg.SkipReason(f"no enabled {frequency} backup schedules in the catalog")
        slot = slots.slot_time(context.scheduled_execution_time)
        return [backup_run_request(row, slot) for row in rows]

    return _schedule


def drill_cron() -> str:
    cron = os.environ.get("DRILL_CRON", "").strip() or DRILL_CRON
    if not is_valid_cron_string(cron):
        raise ConfigError(f"DRILL_CRON={cron!r} is not a cron expression (for example "
                          f"{DRILL_CRON!r}: Sundays at 05:00)")
    return cron


def drill_schedule(timezone: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="restore_drill_schedule",
        cron_schedule=drill_cron(),
        job=drill_job,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="The restore drill of the newest completed backup (DRILL_CRON, weekly by "
        "default): its result is the restore_drill check on motovaultpro_backup.",
    )


def all_schedules() -> list[dg.ScheduleDefinition]:
    timezone = execution_timezone()
    retention = dg.ScheduleDefinition(
        name="retention_cleanup_schedule",
        cron_schedule=RETENTION_CRON,
        job=retention_job,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="The daily retention sweep over every schedule (the safety net behind the "
        "retention that follows each scheduled backup).",
    )
    return [backup_schedule(f, timezone) for f in catalog.FREQUENCIES] + [
        retention, drill_schedule(timezone)]
