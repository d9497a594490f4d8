"""Running a job through Dagster on the instance in DAGSTER_HOME, so the run shows in the UI.

Dagster is imported here only when a command runs a job, so commands that do not (list, show,
settings...) start without it.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backup_pipeline import progress
from backup_pipeline.errors import error_text

if TYPE_CHECKING:
    import dagster as dg

QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
LOCAL_DAGSTER_YAML = "telemetry:\n  enabled: false\n"
_startup_frozen = False


def instance() -> dg.DagsterInstance:
    """DAGSTER_HOME's instance; without DAGSTER_HOME, a local SQLite one in ./.local/dagster."""
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        home = Path(".local/dagster").absolute()
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text(LOCAL_DAGSTER_YAML)
        os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


@contextmanager
def startup_without_gc() -> Iterator[None]:
    """Dagster, the definitions and the instance's storage leave some 300,000 objects behind
    as they are imported. The cyclic garbage collector traversed them again and again while
    they were made (0.3 s) and once more as the process exited (0.4 s). Paused while they are
    made, with the survivors frozen afterwards (`gc.freeze`: never traversed again; modules,
    classes and functions, they live as long as the process anyway), both costs go; the few
    cycles made meanwhile stay (under 1 MB). Once per process: a later call (a test process
    running many jobs) changes nothing, so nothing made later is ever frozen."""
    global _startup_frozen
    if _startup_frozen or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        _startup_frozen = True
        gc.freeze()
        gc.enable()


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The innermost error of the first failed step, without its class name."""
    for event in result.get_step_failure_events():
        return error_text(event.event_specific_data.error)
    return "the run failed"


def execute(job_name: str, run_config: dict[str, Any], *, tags: dict[str, str] | None = None,
            show_progress: bool = False) -> dg.ExecuteInProcessResult:
    with startup_without_gc():
        from backup_pipeline.definitions import defs

        job = defs.get_job_def(job_name)
        inst = instance()
    display = progress.TerminalDisplay() if show_progress and sys.stderr.isatty() else None
    if display is not None:
        progress.add_process_listener(display)
    try:
        with inst:
            return job.execute_in_process(
                run_config={**QUIET_LOGGERS, **run_config}, instance=inst, tags=tags or {},
                raise_on_error=False,
            )
    finally:
        if display is not None:
            progress.remove_process_listener(display)
            display.close()
