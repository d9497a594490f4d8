"""One backup_job run, launched the way the daemon's run worker would: its own process, the
run config of a schedule's run request, the shared instance in DAGSTER_HOME.

    python -m backup_pipeline_tests.scheduling.worker RUN_CONFIG_JSON

Prints "ready" once loaded, waits for a line on stdin (so several workers can start at once),
runs, then prints one JSON line: run id, success, outputs with their metadata.
"""

import json
import sys

import dagster as dg

from backup_pipeline.definitions import defs
from backup_pipeline_tests.scheduling.helpers import step_outputs


def main() -> int:
    run_config = json.loads(sys.argv[1])
    job = defs.get_job_def("backup_job")
    print("ready", flush=True)
    sys.stdin.readline()
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(run_config={**quiet, **run_config}, instance=instance,
                                        raise_on_error=False)
        tags = instance.get_run_by_id(result.run_id).tags
    print(json.dumps({"run_id": result.run_id, "success": result.success,
                      "outputs": step_outputs(result), "tags": dict(tags)}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
