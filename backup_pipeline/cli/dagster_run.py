"""Running a job through Dagster on the instance in DAGSTER_HOME, so the run shows in the UI."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import dagster as dg

from backup_pipeline import progress

QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
LOCAL_DAGSTER_YAML = "telemetry:\n  enabled: false\n"


def instance() -> dg.DagsterInstance:
    """DAGSTER_HOME's instance; without DAGSTER_HOME, a local SQLite one in ./.local/dagster."""
    if not os.environ.get("DAGSTER_HOME"):
        home = Path(".local/dagster").absolute()
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text(LOCAL_DAGSTER_YAML)
        os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def error_text(error) -> str:
    """A Dagster SerializableErrorInfo's innermost cause, on one line, without its class name."""
    while error.cause is not None:
        error = error.cause
    message = error.message.strip()
    prefix = f"{error.cls_name}: "
    if error.cls_name and prefix in message:
        message = message.split(prefix, 1)[1]
    return " ".join(message.split())


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The innermost error of the first failed step, without its class name."""
    for event in result.get_step_failure_events():
        return error_text(event.event_specific_data.error)
    return "the run failed"


def execute(job_name: str, run_config: dict[str, Any], *, tags: dict[str, str] | None = None,
            show_progress: bool = False) -> dg.ExecuteInProcessResult:
    from backup_pipeline.definitions import defs

    job = defs.get_job_def(job_name)
    display = progress.TerminalDisplay() if show_progress and sys.stderr.isatty() else None
    if display is not None:
        progress.add_process_listener(display)
    try:
        with instance() as inst:
            return job.execute_in_process(
                run_config={**QUIET_LOGGERS, **run_config}, instance=inst, tags=tags or {},
                raise_on_error=False,
            )
    finally:
        if display is not None:
            progress.remove_process_listener(display)
            display.close()
