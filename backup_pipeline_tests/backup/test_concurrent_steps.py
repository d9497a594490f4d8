"""Documents are archived on a thread while pg_dump runs: the archive is the same, a failure on
either side stops the other and leaves nothing behind."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
from pathlib import Path

import dagster as dg
import pytest

from backup_pipeline.archive import reader
from backup_pipeline.backup import service
from backup_pipeline.backup.dump import _output
from backup_pipeline.catalog import history
from backup_pipeline.errors import BackupError
from backup_pipeline_tests.backup.test_backup_faults import DROP_DAC, SETPRIV, fake_pg_dump
from backup_pipeline_tests.conftest import AppEnv
from backup_pipeline_tests.helpers import CLI, leftovers, run_backup_job


def collector_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "collect-documents" and t.is_alive()]


def test_documents_start_before_the_dump_and_the_archive_is_standard(app_env: AppEnv):
    result = run_backup_job()
    assert result.success
    starts = [e.step_key for e in result.all_events
              if e.event_type == dg.DagsterEventType.STEP_START]
    assert starts.index("collect_documents") < starts.index("dump_database")
    row = result.output_for_node("record_backup")
    archive = app_env.backup_dir / row["file_name"]
    subprocess.run(["gzip", "-t", str(archive)], check=True)
    assert reader.sha256_file(archive) == row["sha256"]
    assert archive.stat().st_size == row["size_bytes"]
    # the dump (already gzip) is stored as it is: the archive barely exceeds its parts
    manifest = reader.read_manifest(archive)
    documents = manifest["totals"]["documents_bytes"]
    assert row["size_bytes"] < row["database_bytes"] + documents + 64 * 1024
    assert collector_threads() == []


def test_a_name_that_cannot_be_archived_fails_before_pg_dump_starts(app_env: AppEnv):
    with open(os.path.join(os.fsencode(app_env.documents_dir), b"1002", b"bad-\xff.txt"),
              "wb") as f:
        f.write(b"x")
    result = run_backup_job()
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "collect_documents"
    assert "is not UTF-8" in failure.event_specific_data.error.cause.message
    ran = {e.step_key for e in result.all_events
           if e.event_type == dg.DagsterEventType.STEP_START}
    assert "dump_database" not in ran
    assert leftovers(app_env.backup_dir) == []


@pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is not installed")
def test_a_document_failing_while_pg_dump_runs_stops_it(app_env: AppEnv, tmp_path: Path):
    """pg_dump here would never end on its own: the documents' error must end the backup."""
    locked = app_env.documents_dir / "1002" / "locked.txt"
    locked.write_text("private")
    locked.chmod(0)
    folder = fake_pg_dump(tmp_path / "bin", "exec sleep 600\n")
    env = {**app_env.environ(), "PG_BIN_DIR": str(folder)}
    done = subprocess.run([SETPRIV, *DROP_DAC, CLI, "backup"], capture_output=True, text=True,
                          env=env, timeout=240, stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and done.stderr.count("\n") == 1
    assert "cannot read document '1002/locked.txt': Permission denied" in done.stderr
    assert leftovers(app_env.backup_dir) == []
    rows = history.list_page(app_env.database_url)["items"]
    assert [r["status"] for r in rows] == ["failed"] and "locked.txt" in rows[0]["error_message"]


def test_a_failing_dump_stops_the_documents(app_env: AppEnv, tmp_path: Path):
    folder = fake_pg_dump(tmp_path / "bin", 'echo "pg_dump: error: connection lost" >&2\n'
                          "exit 1\n")
    settings = dataclasses.replace(app_env.settings, pg_bin_dir=folder)
    with pytest.raises(BackupError, match="connection lost"):
        service.run_backup(settings)
    assert collector_threads() == []
    assert leftovers(app_env.backup_dir) == []


def test_documents_finished_in_another_process_are_refused(app_env: AppEnv):
    plan = service.begin(app_env.settings, backup_type="manual", trigger="test")
    with pytest.raises(BackupError, match="not being archived in this process"):
        service.finish_documents(app_env.settings, plan)
    assert history.get(app_env.database_url, plan.backup_id)["status"] == "failed"
    assert leftovers(app_env.backup_dir) == []


def test_a_silent_pg_dump_is_still_checked():
    """While pg_dump writes nothing, the check still runs, so a failure elsewhere stops it."""
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise BackupError("documents failed")

    silent = subprocess.Popen(["sleep", "600"], stdout=subprocess.PIPE, bufsize=0)
    try:
        with pytest.raises(BackupError, match="documents failed"):
            list(_output(silent.stdout, check))
    finally:
        silent.kill()
        silent.wait()
        silent.stdout.close()
    assert len(calls) == 3
