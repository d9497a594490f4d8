"""A real `dagster-daemon run` sees a backup made by the CLI (execute_in_process, no code
location origin) and mails about it: the case `monitored_jobs=[...]` would silently miss."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from backup_pipeline.sensors import stopped_sensors
from backup_pipeline_tests.notifications.conftest import RECIPIENTS, WEBSERVER

BIN = Path(sys.executable).parent
SENSOR = "backup_success_email_sensor"


def first_tick_done(instance: dg.DagsterInstance, name: str) -> bool:
    for state in instance.all_instigator_state():
        if state.name == name:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
            return bool(ticks) and ticks[0].status.value != "STARTED"
    return False


def wait_for(condition, seconds: float, daemon: subprocess.Popen, log: Path) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        if daemon.poll() is not None:
            pytest.skip(f"dagster-daemon exited ({daemon.returncode}): "
                        f"{log.read_text()[-1500:]}")
        time.sleep(0.5)
    return False


def test_daemon_mails_about_a_backup_made_by_the_cli(notify, tmp_path):
    notify.set(notify_on_success="true")
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-m", "backup_pipeline.definitions"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME's, shared with the daemon
            if not wait_for(lambda: first_tick_done(instance, SENSOR), 40, daemon, log):
                print(f"dagster-daemon log:\n{log.read_text()[-3000:]}")
                pytest.skip("dagster-daemon did not evaluate its sensors within 40 s")

        done = subprocess.run([str(BIN / "backup-pipeline"), "backup", "--json"],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)

        arrived = wait_for(lambda: len(notify.smtp.received) >= 2, 45, daemon, log)
        assert arrived, f"no mail; dagster-daemon log:\n{log.read_text()[-3000:]}"
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()

    assert notify.recipients_mailed() == sorted(RECIPIENTS)
    fields = notify.smtp.received[0].fields
    assert fields["Archive"] == record["file_name"]
    assert fields["Trigger"] == "manual (cli)"
    assert fields["Run"] == f"{WEBSERVER}/runs/{record['dagster_run_id']}"
    [decision] = notify.decisions()
    assert decision["decided_by"] == SENSOR  # the run-status sensor, not the catch-up

    # a run-status sensor an operator turns off is left alone by the outbox sensor's catch-up
    stop = subprocess.run([str(BIN / "dagster"), "sensor", "stop", "restore_failure_email_sensor",
                           "-m", "backup_pipeline.definitions"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert stop.returncode == 0, stop.stderr[-2000:]
    with dg.DagsterInstance.get() as instance:
        assert stopped_sensors(instance) == {"restore_failure_email_sensor"}
