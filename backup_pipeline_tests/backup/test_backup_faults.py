"""Every way a backup can fail: one clear line, a failed row, no archive or temporary file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from backup_pipeline.backup import service
from backup_pipeline.catalog import history, liveness
from backup_pipeline.catalog.migrate import migrate
from backup_pipeline.postgres import database_name, with_database
from backup_pipeline_tests.conftest import AppEnv, local_services, make_dagster_home, psql
from backup_pipeline_tests.helpers import CLI, leftovers, run_backup_job, run_cli

SETPRIV = shutil.which("setpriv")
DROP_DAC = ["--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search"]


def assert_failed_cleanly(app_env: AppEnv, done: subprocess.CompletedProcess, reason: str):
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert reason in lines[0]
    assert done.stdout == ""
    assert leftovers(app_env.backup_dir) == []
    rows = history.list_page(app_env.database_url)["items"]
    assert [r["status"] for r in rows] == ["failed"]
    assert reason in rows[0]["error_message"]
    assert "\n" not in rows[0]["error_message"]


def fake_pg_dump(folder: Path, body: str) -> Path:
    """A pg_dump in its own folder (for PG_BIN_DIR) that misbehaves as the body says."""
    folder.mkdir(parents=True, exist_ok=True)
    real = shutil.which("pg_dump")
    script = folder / "pg_dump"
    script.write_text(f"#!/bin/bash\nREAL={real}\n"
                      'if [ "$1" = "--version" ]; then exec "$REAL" --version; fi\n' + body)
    script.chmod(0o755)
    return folder


def test_database_unreachable(app_env: AppEnv):
    env = app_env.environ()
    env["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/nowhere"
    done = run_cli("backup", env=env)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot connect to postgres@127.0.0.1:1/nowhere" \
        in done.stderr
    assert leftovers(app_env.backup_dir) == []


def test_database_unreachable_fails_the_dagster_run(app_env: AppEnv, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    result = run_backup_job()
    assert not result.success
    assert leftovers(app_env.backup_dir) == []


def test_pg_dump_missing(app_env: AppEnv, tmp_path: Path):
    env = {**app_env.environ(), "PG_BIN_DIR": str(tmp_path / "empty")}
    (tmp_path / "empty").mkdir()
    assert_failed_cleanly(app_env, run_cli("backup", env=env), "pg_dump not found")


def test_pg_dump_fails_mid_stream(app_env: AppEnv, tmp_path: Path):
    folder = fake_pg_dump(tmp_path / "bin", '"$REAL" "$@" | head -c 200000\n'
                          'echo "pg_dump: error: query failed: server closed the connection '
                          'unexpectedly" >&2\nexit 1\n')
    env = {**app_env.environ(), "PG_BIN_DIR": str(folder)}
    assert_failed_cleanly(app_env, run_cli("backup", env=env),
                          "server closed the connection unexpectedly")


def test_pg_dump_output_cut_short_without_error(app_env: AppEnv, tmp_path: Path):
    folder = fake_pg_dump(tmp_path / "bin", '"$REAL" "$@" | head -c 200000\nexit 0\n')
    env = {**app_env.environ(), "PG_BIN_DIR": str(folder)}
    assert_failed_cleanly(app_env, run_cli("backup", env=env), "completion line is missing")


def test_documents_dir_missing(app_env: AppEnv, tmp_path: Path):
    env = {**app_env.environ(), "DOCUMENTS_DIR": str(tmp_path / "no-such-folder")}
    assert_failed_cleanly(app_env, run_cli("backup", env=env), "does not exist")


@pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is not installed")
def test_document_unreadable(app_env: AppEnv):
    secret = app_env.documents_dir / "1002" / "locked.txt"
    secret.write_text("private")
    secret.chmod(0)
    done = subprocess.run([SETPRIV, *DROP_DAC, str(Path(run_cli.__globals__["CLI"])), "backup"],
                          capture_output=True, text=True, env=app_env.environ())
    assert_failed_cleanly(app_env, done, "cannot read document '1002/locked.txt': "
                                         "Permission denied")


@pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is not installed")
def test_backup_dir_not_writable(app_env: AppEnv):
    app_env.backup_dir.mkdir(mode=0o500)
    done = subprocess.run([SETPRIV, *DROP_DAC, str(Path(run_cli.__globals__["CLI"])), "backup"],
                          capture_output=True, text=True, env=app_env.environ())
    app_env.backup_dir.chmod(0o700)
    assert_failed_cleanly(app_env, done, "not writable")


def test_backup_dir_cannot_be_created(app_env: AppEnv, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**app_env.environ(), "BACKUP_DIR": str(blocker / "backups")}
    done = run_cli("backup", env=env)
    assert done.returncode == 1 and "cannot create backup directory" in done.stderr
    rows = history.list_page(app_env.database_url)["items"]
    assert [r["status"] for r in rows] == ["failed"]


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs",
                           str(mount_point)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full(app_env: AppEnv, tiny_disk: Path):
    app_env.backup_dir = tiny_disk / "backups"
    done = run_cli("backup", env=app_env.environ())
    assert_failed_cleanly(app_env, done, "disk is full")
    assert list(tiny_disk.rglob("*.partial")) == []


@pytest.fixture(scope="module")
def password_server():
    """A throwaway cluster whose TCP logins need a password (scram-sha-256)."""
    folder = Path(tempfile.mkdtemp(prefix="bp-pw-"))
    try:
        url = local_services.start_postgres(folder, password="S3cret-Pw-4711")
    except Exception as exc:  # noqa: BLE001 - no initdb here: say why and skip
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"cannot start a PostgreSQL cluster with password logins: {exc}")
    yield url.replace("postgres@", "postgres:S3cret-Pw-4711@")
    local_services.stop(folder)
    shutil.rmtree(folder, ignore_errors=True)


def test_wrong_password(password_server: str, tmp_path: Path, app_env: AppEnv):
    env = {**app_env.environ(),
           "DATABASE_URL": password_server.replace("S3cret-Pw-4711", "wrong-password")}
    done = run_cli("backup", env=env)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "password authentication failed" in done.stderr
    assert "wrong-password" not in done.stderr
    assert leftovers(app_env.backup_dir) == []


def test_password_never_on_a_command_line_or_in_logs(password_server: str, tmp_path: Path,
                                                     app_env: AppEnv):
    password = "S3cret-Pw-4711"
    url = with_database(password_server, "postgres")
    migrate(url)
    argv_log = tmp_path / "argv.log"
    folder = fake_pg_dump(tmp_path / "bin", f'cat /proc/$$/cmdline | tr "\\0" " " >> {argv_log}\n'
                          'exec "$REAL" "$@"\n')
    home = make_dagster_home(tmp_path / "home")
    env = {**app_env.environ(), "DATABASE_URL": url, "PG_BIN_DIR": str(folder),
           "DAGSTER_HOME": str(home)}
    done = run_cli("--json", "backup", env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "completed"
    assert "--dbname=" in argv_log.read_text()
    assert password not in argv_log.read_text()
    assert password not in done.stdout + done.stderr
    with dg.DagsterInstance.from_config(str(home)) as instance:
        logs = instance.all_logs(record["dagster_run_id"])
        assert logs and not any(password in (e.message or "") for e in logs)
        assert not any(password in str(e.dagster_event) for e in logs)
    for path in home.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".out", ".err", ".txt"):
            assert password not in path.read_text(errors="replace")
    assert os.stat(app_env.backup_dir / record["file_name"]).st_mode & 0o777 == 0o600
    assert stat.S_IMODE(app_env.backup_dir.stat().st_mode) == 0o700


def test_a_killed_backup_is_marked_failed_and_swept_by_the_next(app_env: AppEnv, tmp_path: Path):
    """kill -9 mid-dump: nothing can clean up then. The next backup finds the row in progress
    with nobody holding its lock, marks it failed and removes its staging."""
    started = tmp_path / "pg_dump-started"
    folder = fake_pg_dump(tmp_path / "bin", f'touch {started}\n"$REAL" "$@"\nsleep 600\n')
    env = {**app_env.environ(), "PG_BIN_DIR": str(folder)}
    victim = subprocess.Popen([CLI, "backup"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline and victim.poll() is None, "pg_dump never ran"
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    [row] = history.list_page(app_env.database_url)["items"]
    assert row["status"] == "in_progress" and leftovers(app_env.backup_dir) != []

    done = run_cli("backup", env=app_env.environ())

    assert done.returncode == 0, done.stderr
    rows = {r["id"]: r for r in history.list_page(app_env.database_url)["items"]}
    assert rows[row["id"]]["status"] == "failed"
    assert "interrupted: the process writing it ended" in rows[row["id"]]["error_message"]
    assert [p for p in leftovers(app_env.backup_dir) if p.startswith(".staging")] == []


def test_a_running_backup_is_not_taken_for_abandoned(app_env: AppEnv):
    settings = app_env.settings
    plan = service.begin(settings, backup_type="manual", trigger="test")
    try:
        other = service.begin(settings, backup_type="manual", trigger="test")
        service.give_up(settings, other, "test over")
        assert history.get(app_env.database_url, plan.backup_id)["status"] == "in_progress"
        assert os.path.isdir(plan.staging_dir)
    finally:
        service.give_up(settings, plan, "test over")
    assert history.reap_abandoned(app_env.database_url) == []


def test_the_liveness_lock_outlasts_a_server_idle_timeout(app_env: AppEnv):
    url = app_env.database_url
    psql(url, "-c", f'ALTER DATABASE "{database_name(url)}" SET idle_session_timeout = 300')
    backup_id = str(uuid.uuid4())
    liveness.hold(url, backup_id)
    try:
        time.sleep(1.0)  # other sessions would have been cut after 0.3 s
        assert liveness.abandoned(url, [backup_id]) == []
    finally:
        liveness.release(backup_id)
    assert liveness.abandoned(url, [backup_id]) == [backup_id]


KILLED_AFTER_LINK = """
import os, signal
from backup_pipeline.backup import service
from backup_pipeline.settings import Settings
settings = Settings.from_env()
plan = service.begin(settings, backup_type="manual", trigger="test")
service.start_documents(settings, plan)
dump = service.dump(settings, plan)
docs = service.finish_documents(settings, plan)
manifest = service.write_manifest(settings, plan, dump, docs)
archive = service.assemble(settings, plan, manifest, dump, docs)
print(plan.backup_id, archive.file_name, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # linked, not yet recorded: what record_backup does next
"""

KILLED_AFTER_INTENT = """
import os, signal, sys
from backup_pipeline.backup import service
from backup_pipeline.catalog import history
from backup_pipeline.settings import Settings
settings = Settings.from_env()
plan = service.begin(settings, backup_type="manual", trigger="test")
history.intend_file(settings.database_url, plan.backup_id, sys.argv[1], sys.argv[2])
print(plan.backup_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the name was taken: the link would have failed
"""


def _killed(app_env: AppEnv, script: str, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", script, *args], env=app_env.environ(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    return done.stdout.split()


def test_a_backup_killed_between_link_and_record_leaves_no_archive(app_env: AppEnv):
    """kill -9 after the archive got its final name but before its row says completed: the next
    backup reaps the row and removes the archive no completed row names."""
    kept = service.run_backup(app_env.settings)
    backup_id, file_name = _killed(app_env, KILLED_AFTER_LINK)
    assert (app_env.backup_dir / file_name).is_file()
    assert history.get(app_env.database_url, backup_id)["status"] == "in_progress"

    done = run_cli("--json", "backup", env=app_env.environ())

    assert done.returncode == 0, done.stderr
    newest = json.loads(done.stdout)
    row = history.get(app_env.database_url, backup_id)
    assert row["status"] == "failed" and row["file_name"] is None
    assert f"its unfinished archive {file_name} was removed" in row["error_message"]
    assert not (app_env.backup_dir / file_name).exists()
    completed = [r for r in history.list_page(app_env.database_url)["items"]
                 if r["status"] == "completed"]
    assert sorted(r["id"] for r in completed) == sorted([kept["id"], newest["id"]])
    assert [p for p in leftovers(app_env.backup_dir) if not p.startswith(".")] == \
        sorted(r["file_name"] for r in completed)


def test_the_reaper_removes_only_the_archive_its_backup_linked(app_env: AppEnv):
    """A backup killed after recording a name whose link then failed (a file not in the
    catalog had it): its row names that file, but the file is not its archive and stays."""
    kept = service.run_backup(app_env.settings)
    foreign = app_env.backup_dir / "motovaultpro_backup_20200101_000000.tar.gz"
    foreign.write_bytes(b"someone else's file")
    [backup_id] = _killed(app_env, KILLED_AFTER_INTENT, foreign.name, "ab" * 32)
    assert history.get(app_env.database_url, backup_id)["file_name"] == foreign.name

    service.run_backup(app_env.settings)

    row = history.get(app_env.database_url, backup_id)
    assert row["status"] == "failed" and "removed" not in row["error_message"]
    assert foreign.read_bytes() == b"someone else's file"
    assert history.get(app_env.database_url, kept["id"])["status"] == "completed"
    assert (app_env.backup_dir / kept["file_name"]).is_file()


def test_a_name_another_row_holds_is_not_recorded(app_env: AppEnv):
    kept = service.run_backup(app_env.settings)
    plan = service.begin(app_env.settings, backup_type="manual", trigger="test")
    try:
        assert not history.intend_file(app_env.database_url, plan.backup_id,
                                       kept["file_name"], kept["sha256"])
        assert history.get(app_env.database_url, plan.backup_id)["file_name"] is None
    finally:
        service.give_up(app_env.settings, plan, "test over")
