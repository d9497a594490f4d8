"""`drill [ID]`: a restore drill, run as drill_job through Dagster (its result is then in the
asset's check history)."""

from __future__ import annotations

import sys

from backup_pipeline.cli import dagster_run
from backup_pipeline.cli.backups import _require_migrated
from backup_pipeline.cli.output import Result
from backup_pipeline.errors import BackupError
from backup_pipeline.settings import Settings


def register(sub, common) -> None:
    p = sub.add_parser("drill", parents=[common],
                       help="restore a backup (default: the newest completed) into a scratch "
                       "database and folder and compare it with its manifest; exit 1 if it fails")
    p.add_argument("id", nargs="?", help="the backup to drill (default: the newest completed)")
    p.set_defaults(handler=run_drill)


def run_drill(args) -> Result:
    _require_migrated(Settings.from_env())
    run_config = {"ops": {"run_restore_drill": {"config": {"backup_id": args.id}}}}
    result = dagster_run.execute("drill_job", run_config, tags={"backup_pipeline/trigger": "cli"},
                                 show_progress=not args.json and sys.stdout.isatty())
    data = {**(result.output_for_node("run_restore_drill") if result.success
               else _failed_drill(result)), "dagster_run_id": result.run_id}
    if data["ok"]:
        return Result(data, data["description"])
    return Result(data, data["description"], exit_code=1, error=data["description"])


def _failed_drill(result) -> dict:
    """The result a failed drill put on its step's failure; raises when the run failed before
    a drill ran (no such backup, archive missing)."""
    for event in result.get_step_failure_events():
        failure = event.event_specific_data.user_failure_data
        if failure is not None and "result" in (failure.metadata or {}):
            return failure.metadata["result"].value
    raise BackupError(f"drill failed: {dagster_run.failure_message(result)} "
                      f"(Dagster run {result.run_id})")
