"""Several processes running backup_job for the same schedule slot, as several daemons or
containers would: exactly one archive and one completed row per slot, whatever happens to the
lock holder or to Redis."""

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
import pytest

from backup_pipeline.scheduling.lock import lock_key, redis_client
from backup_pipeline_tests.conftest import local_services
from backup_pipeline_tests.scheduling.helpers import tick

SLOT = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
SLOT_2 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


def run_config_from_tick(when: datetime) -> dict:
    """The run config the daily schedule's tick asks for (one enabled daily schedule)."""
    [request] = tick("daily_backup_schedule", when).run_requests
    return request.run_config


def wait_for(condition: Callable[[], bool], what: str, limit: float = 120) -> None:
    """Poll until condition() holds; the limit only keeps a broken test from hanging."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def query(url: str, sql: str, *params):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def slot_rows(url: str, slot: datetime) -> list[tuple]:
    return query(url, "SELECT status, file_name, error_message FROM backup.backup_history"
                      " WHERE slot_time = %s ORDER BY started_at", slot)


def archives(app_env) -> list[str]:
    return sorted(p.name for p in app_env.backup_dir.iterdir() if p.is_file())


@contextmanager
def pg_dump_blocked(url: str) -> Iterator[None]:
    """Hold a table lock that pg_dump waits for: a backup started now stays mid-run."""
    with psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE public.actor IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


def pg_dump_waiting(url: str) -> bool:
    return query(url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'"
                      " AND datname = current_database() AND wait_event_type = 'Lock'")[0][0] > 0


def made_backup(result: dict) -> bool:
    return "record_backup.result" in result["outputs"]


def skip_reason(result: dict) -> str:
    return result["outputs"].get("start_backup.skipped", {}).get("reason", "")


def test_eight_processes_racing_for_one_slot(app_env, schedule, start_worker, redis_url):
    config = run_config_from_tick(SLOT)
    workers = [start_worker(config, REDIS_URL=redis_url) for _ in range(8)]
    for worker in workers:
        worker.wait_ready()
    for worker in workers:  # all loaded: release them together
        worker.go()
    results = [worker.result() for worker in workers]

    assert all(r["success"] for r in results)
    winners = [r for r in results if made_backup(r)]
    losers = [r for r in results if not made_backup(r)]
    assert len(winners) == 1 and len(losers) == 7
    for loser in losers:
        assert skip_reason(loser)
        assert loser["tags"]["backup_pipeline/skipped"] == skip_reason(loser)
    [(status, file_name, _)] = slot_rows(app_env.database_url, SLOT)
    assert status == "completed" and archives(app_env) == [file_name]
    assert query(app_env.database_url, "SELECT count(*) FROM backup.backup_history")[0][0] == 1
    assert not redis_client(redis_url).exists(lock_key(schedule["id"]))


def test_a_lock_holder_paused_past_the_ttl(app_env, schedule, start_worker, redis_url):
    """The first worker stops (SIGSTOP) mid-backup for longer than the TTL: its lock and its
    claim lapse, a second worker takes the slot over and completes it; when the first wakes up
    it finds its claim gone and removes what it made. One archive, one completed row."""
    config = run_config_from_tick(SLOT)
    env = {"REDIS_URL": redis_url, "BACKUP_LOCK_TTL_SECONDS": "2"}
    client = redis_client(redis_url)
    url = app_env.database_url
    with pg_dump_blocked(url):
        first = start_worker(config, **env)
        first.wait_ready()
        first.go()
        wait_for(lambda: pg_dump_waiting(url), "the first worker's pg_dump")
        os.kill(first.proc.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: query(url, "SELECT lease_until < now() FROM"
                                        " backup.schedule_slots")[0][0], "the lease to end")
            wait_for(lambda: not client.exists(lock_key(schedule["id"])), "the lock to expire")
        except BaseException:
            os.kill(first.proc.pid, signal.SIGCONT)
            raise
    second = start_worker(config, **env)
    second.wait_ready()
    second.go()
    took_over = second.result()
    os.kill(first.proc.pid, signal.SIGCONT)
    woke_up = first.result()

    assert made_backup(took_over)
    assert "took over slot 2026-03-01T03:00:00Z" in \
        took_over["outputs"]["start_backup.plan"]["warnings"]
    assert woke_up["success"] and not made_backup(woke_up)
    assert "another run took over this slot" in woke_up["tags"]["backup_pipeline/skipped"]

    rows = slot_rows(url, SLOT)
    assert [r[0] for r in rows] == ["failed", "completed"]
    # the first reason recorded stays: the taker marks the paused run's row abandoned when it
    # completes the slot, or the paused run gives up first, whichever happens first
    assert rows[0][2].startswith(("superseded: another run took over",
                                  "abandoned: its run stopped renewing the slot claim"))
    assert archives(app_env) == [rows[1][1]]
    assert not list((app_env.backup_dir / ".staging").iterdir())

    # Completed now: nobody may take the slot again, however late.
    late = start_worker(config, **env)
    late.wait_ready()
    late.go()
    assert "already completed" in skip_reason(late.result())
    assert archives(app_env) == [rows[1][1]]


@pytest.fixture
def own_redis(tmp_path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A redis-server of this test's own, so the test can stop it."""
    port = local_services.free_port()
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: local_services.redis_answers("127.0.0.1", port), "redis-server to start")
    yield f"redis://127.0.0.1:{port}/0", server
    if server.poll() is None:
        server.kill()
        server.wait()


def test_redis_stopped_mid_test(app_env, schedule, start_worker, own_redis):
    redis_url, server = own_redis
    url = app_env.database_url
    env = {"REDIS_URL": redis_url, "BACKUP_LOCK_TTL_SECONDS": "3"}
    config = run_config_from_tick(SLOT)
    with pg_dump_blocked(url):
        holder = start_worker(config, **env)
        holder.wait_ready()
        holder.go()
        wait_for(lambda: pg_dump_waiting(url), "the holder's pg_dump")
        assert redis_client(redis_url).exists(lock_key(schedule["id"]))
        server.kill()
        server.wait()
        # Redis is gone: a second run for the slot falls back on the claim, which is taken.
        second = start_worker(config, **env)
        second.wait_ready()
        second.go()
        refused = second.result()
    finished = holder.result()

    assert made_backup(finished)
    assert "Redis became unreachable while this backup ran" in \
        finished["outputs"]["record_backup.result"]["warnings"]
    assert refused["success"] and not made_backup(refused)
    assert "is claimed by run" in skip_reason(refused)
    assert "is unreachable" in refused["outputs"]["start_backup.skipped"]["warnings"]

    # Still no Redis: the next slot's backup runs, once, guarded by the claim alone.
    config_2 = run_config_from_tick(SLOT_2)
    racers = [start_worker(config_2, REDIS_URL=redis_url) for _ in range(3)]
    for racer in racers:
        racer.wait_ready()
    for racer in racers:
        racer.go()
    results = [racer.result() for racer in racers]
    assert sum(made_backup(r) for r in results) == 1
    for r in results:
        step = "start_backup.plan" if made_backup(r) else "start_backup.skipped"
        assert f"Redis at 127.0.0.1:{redis_url.split(':')[2]}" in r["outputs"][step]["warnings"]

    for slot in (SLOT, SLOT_2):
        assert [r[0] for r in slot_rows(url, slot)] == ["completed"]
    assert len(archives(app_env)) == 2
