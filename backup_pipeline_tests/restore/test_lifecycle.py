"""How restores begin and end when things go wrong: only databases a restore recorded as its
own are ever dropped; a killed restore blocks nothing and leaves nothing committed; a backup and
a restore never both start."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import psycopg
import pytest

from backup_pipeline.archive import manifest as mf
from backup_pipeline.backup import service as backup_service
from backup_pipeline.backup.service import run_backup
from backup_pipeline.catalog import history, liveness
from backup_pipeline.errors import ConfigError
from backup_pipeline.postgres import database_name, with_database
from backup_pipeline.restore import database, runs, service
from backup_pipeline.restore import plan as restore_plan
from backup_pipeline.restore.errors import RestoreBusyError, RestoreError
from backup_pipeline_tests.conftest import psql
from backup_pipeline_tests.helpers import CLI, run_cli
from backup_pipeline_tests.restore.helpers import database_fingerprint, gunzip, read_archive

START_LOCK_CLASS = 0x62707374


def databases_like(url: str, prefix: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,))}


def recorded(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM backup.restore_databases")}


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    """Poll until `condition()` holds (a guard against hanging, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def sessions_on(url: str, name: str, state: str | None = None) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND (%s::text IS NULL OR state = %s)", (name, state, state)).fetchone()[0]


def ended(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


def public_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def test_a_restore_drops_only_the_databases_a_restore_recorded(app_env):
    settings = app_env.settings
    url = settings.database_url
    live = database_name(url)
    backup = run_backup(settings)
    # an operator's copies that merely look like ours: <db>_old_<8 digits>, <db>_restore_<8 hex>
    operators = {f"{live}_old_20240101", f"{live}_restore_{secrets.token_hex(4)}"}
    with psycopg.connect(url, autocommit=True) as conn:
        for name in operators:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        # a restore that crashed after creating (and recording) its new database
        crashed = service.claim(settings, backup["id"], dry_run=False)
        service.verify(settings, crashed)
        restore_plan.take_background(crashed.restore_id).wait().abort()  # as if killed
        assert crashed.new_database in recorded(url)
        liveness.release(crashed.restore_id, kind="restore")  # as when its process dies

        done = service.run_restore(settings, backup["id"], dry_run=False)

        assert done["state"] == "completed"
        assert runs.get(url, crashed.restore_id)["state"] == "failed"
        assert databases_like(url, f"{live}_") == operators
        assert recorded(url) == set()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for name in operators:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_a_killed_psql_parent_commits_nothing(app_env, databases, tmp_path):
    """psql reads EOF when the process feeding it dies: that must not commit what it read."""
    target = databases.create()
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from backup_pipeline.restore.database import PsqlLoader\n"
        "from backup_pipeline.settings import Settings\n"
        "loader = PsqlLoader(Settings.from_env(), sys.argv[1], Path(sys.argv[2]))\n"
        "loader.begin(False)\n"
        "loader.write(b'CREATE TABLE loaded (i integer);\\n'\n"
        "             b'COPY loaded (i) FROM stdin;\\n1\\n2\\n3\\n\\\\.\\n')\n"
        "loader.proc.stdin.flush()\n"
        "print(loader.proc.pid, flush=True)\n"
        "os._exit(9)  # dies as kill -9 would: no finish(), psql gets EOF\n"
    )
    done = subprocess.run([sys.executable, "-c", code, target, str(tmp_path / "psql.err")],
                          env=app_env.environ(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    wait_for(lambda: ended(int(done.stdout)), "psql to end")
    assert public_tables(target) == []


@pytest.mark.parametrize("first", ["backup", "restore"])
def test_a_backup_and_a_restore_never_both_start(app_env, monkeypatch, first):
    """Whichever is between its check for the other and the insert of its own row, the other
    waits for it and is then refused."""
    settings = app_env.settings
    url = settings.database_url
    backup = run_backup(settings)
    in_window, go_on = threading.Event(), threading.Event()
    module, name = (history, "create") if first == "backup" else (runs, "create")
    real = getattr(module, name)

    def slow(*args, **kwargs):
        in_window.set()
        go_on.wait()
        return real(*args, **kwargs)

    outcome: dict[str, object] = {}

    def start(which: str) -> None:
        try:
            if which == "backup":
                outcome[which] = backup_service.begin(settings, backup_type="manual",
                                                      trigger="test")
            else:
                outcome[which] = service.claim(settings, backup["id"], dry_run=False)
        except Exception as exc:  # noqa: BLE001 - examined below
            outcome[which] = exc

    second = "restore" if first == "backup" else "backup"
    monkeypatch.setattr(module, name, slow)
    one = threading.Thread(target=start, args=(first,))
    one.start()
    assert in_window.wait(120)
    monkeypatch.setattr(module, name, real)  # the second goes through unhindered
    two = threading.Thread(target=start, args=(second,))
    two.start()
    with psycopg.connect(url, autocommit=True) as conn:
        def second_waits() -> bool:
            return conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND classid = %s AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())", (START_LOCK_CLASS,)).fetchone()[0] > 0
        wait_for(lambda: not two.is_alive() or second_waits(), "the second to start or wait")
    go_on.set()
    one.join()
    two.join()
    try:
        assert not isinstance(outcome[first], Exception), outcome[first]
        assert isinstance(outcome[second], RestoreBusyError), outcome[second]
    finally:
        for value in outcome.values():
            if isinstance(value, backup_service.BackupPlan):
                backup_service.give_up(settings, value, "test over")
            elif isinstance(value, restore_plan.RestorePlan):
                runs.fail(url, value.restore_id, "test over")


def last_statement(archive: Path) -> str:
    """The first line of the dump's last SQL statement."""
    _, members = read_archive(archive)
    lines = gunzip(members[mf.DUMP_MEMBER]).decode().splitlines()
    ends = [i for i, line in enumerate(lines) if line.endswith(";")]
    start = ends[-1]
    while start > 0 and lines[start - 1].strip() and not lines[start - 1].endswith(";") \
            and not lines[start - 1].startswith("--"):
        start -= 1
    return lines[start]


def last_query(url: str, name: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT query FROM pg_stat_activity WHERE datname = %s"
                           " AND state = 'idle in transaction'", (name,)).fetchone()
    return row[0] if row else ""


def fake_bin(folder: Path, started: Path) -> Path:
    """PG_BIN_DIR whose pg_dump (the safety backup's) says it started, dumps, then hangs."""
    folder.mkdir(parents=True)
    (folder / "psql").symlink_to(shutil.which("psql"))
    script = folder / "pg_dump"
    script.write_text(f"#!/bin/bash\nREAL={shutil.which('pg_dump')}\n"
                      'if [ "$1" = "--version" ]; then exec "$REAL" --version; fi\n'
                      f'touch {started}\n"$REAL" "$@"\nsleep 600\n')
    script.chmod(0o755)
    return folder


def test_a_restore_killed_during_its_safety_backup(app_env, tmp_path):
    """kill -9 of `restore ID --yes` while the safety backup runs and the new database is
    loaded: the next backup reaps the restore (its lock is free) instead of being refused,
    the loaded rows were never committed, and the next restore runs and drops what the
    killed one made."""
    settings = app_env.settings
    url = settings.database_url
    backup = run_backup(settings)
    started = tmp_path / "safety-dump-started"
    env = {**app_env.environ(), "PG_BIN_DIR": str(fake_bin(tmp_path / "bin", started))}
    victim = subprocess.Popen([CLI, "restore", backup["id"], "--yes"], env=env,
                              start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: started.exists() or victim.poll() is not None, "the safety backup")
        assert victim.poll() is None, "the restore ended before its safety backup"
        killed = runs.latest(url)
        new_name = database.sibling_name(database_name(url), "restore", killed["id"])
        new = with_database(url, new_name)
        # psql has run the dump's last statement and waits in its transaction for more
        last = last_statement(settings.backup_dir / backup["file_name"])
        wait_for(lambda: last in last_query(url, new_name), "the whole dump to be loaded")
        os.kill(victim.pid, signal.SIGKILL)  # the restore only: its psql reads EOF
        victim.wait()
        wait_for(lambda: sessions_on(url, new_name) == 0, "psql to end")
    finally:
        with suppress(ProcessLookupError):
            os.killpg(victim.pid, signal.SIGKILL)  # the hanging pg_dump
    assert public_tables(new) == []  # nothing of the load was committed
    assert runs.get(url, killed["id"])["state"] == "running"

    done = run_cli("--json", "backup", env=app_env.environ())

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    row = runs.get(url, killed["id"])
    assert row["state"] == "failed" and "interrupted" in row["error_message"]
    safety = history.list_page(url, backup_type="safety")["items"]
    assert [r["status"] for r in safety] == ["failed"]

    done = run_cli("--json", "restore", backup["id"], "--yes", env=app_env.environ())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "completed"
    assert new_name not in databases_like(url, new_name)
    assert recorded(url) == set()


def test_a_restore_that_was_reaped_meanwhile_does_not_swap(app_env):
    """If its lock was lost (a cut session) and the restore reaped, a backup may have started
    since: the swap refuses instead of renaming databases under it."""
    settings = app_env.settings
    url = settings.database_url
    backup = run_backup(settings)
    psql(url, "-c", "DELETE FROM film_actor WHERE actor_id < 50")
    before = database_fingerprint(url)
    plan = service.claim(settings, backup["id"], dry_run=False)
    checked = service.verify(settings, plan)
    service.load_database(settings, plan, checked)
    liveness.release(plan.restore_id, kind="restore")
    assert runs.reap(url) == [plan.restore_id]

    with pytest.raises(RestoreError, match="step swap: this restore was marked ended meanwhile"):
        service.swap(settings, plan)

    assert database_fingerprint(url) == before
    assert databases_like(url, f"{database_name(url)}_") == set()


def test_a_restore_id_an_earlier_restore_took_is_refused_in_one_line(app_env):
    """runs.create retried for ever when the id clashed with a finished restore's row."""
    settings = app_env.settings
    backup = run_backup(settings, backup_type="manual", trigger="test")
    done = runs.create(settings.database_url, backup_id=backup["id"], dry_run=True,
                       scope="both", trigger="test", run_id=None)
    runs.fail(settings.database_url, done["id"], "over")
    with pytest.raises(ConfigError, match="is taken by an earlier restore"):
        runs.create(settings.database_url, backup_id=backup["id"], dry_run=True, scope="both",
                    trigger="test", run_id=None, restore_id=done["id"])
