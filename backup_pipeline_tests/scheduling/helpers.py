"""Running backup_job for scheduling tests and reading what its steps reported."""

from __future__ import annotations

from datetime import datetime

import dagster as dg


def backup_run_config(schedule_row: dict, slot: str) -> dict:
    return {"ops": {"start_backup": {"config": {
        "backup_type": "scheduled", "trigger": f"schedule:{schedule_row['name']}",
        "schedule_id": schedule_row["id"], "slot_time": slot}}}}


def step_outputs(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """{"step.output": metadata as plain values} for every output the run yielded."""
    found = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_OUTPUT":
            data = event.step_output_data
            found[f"{event.step_key}.{data.output_name}"] = {
                k: v.value for k, v in data.metadata.items()}
    return found


def run_backup_job(config: dict, **kwargs) -> dg.ExecuteInProcessResult:
    from backup_pipeline.definitions import defs

    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        return defs.get_job_def("backup_job").execute_in_process(
            run_config={**quiet, **config}, instance=instance, raise_on_error=False, **kwargs)


def tick(name: str, when: datetime):
    """Evaluate one tick of a schedule of our definitions, with its resources bound."""
    from backup_pipeline.definitions import defs

    repo = defs.get_repository_def()
    with dg.DagsterInstance.ephemeral() as instance, dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when,
        resources=repo.get_top_level_resources(),
    ) as context:
        return repo.get_schedule_def(name).evaluate_tick(context)
