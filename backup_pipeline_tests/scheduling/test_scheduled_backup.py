"""Scheduled runs of backup_job in this process: slot claims, skips, retention afterwards,
the lock released however the run ends."""

import os

import psycopg
import pytest

from backup_pipeline.cli.dagster_run import failure_message
from backup_pipeline.postgres import database_name
from backup_pipeline.restore import settle
from backup_pipeline.scheduling import catalog
from backup_pipeline.scheduling.lock import FileLock, lock_key, redis_client
from backup_pipeline_tests.scheduling.helpers import (
    backup_run_config,
    run_backup_job,
    step_outputs,
)


def history_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT status, slot_time, file_name FROM backup.backup_history"
                            " ORDER BY started_at").fetchall()


def archives(app_env) -> list[str]:
    if not app_env.backup_dir.exists():
        return []
    return sorted(p.name for p in app_env.backup_dir.iterdir() if p.is_file())


@pytest.fixture
def with_redis(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> str:
    monkeypatch.setenv("REDIS_URL", redis_url)
    return redis_url


def test_scheduled_backups_keep_their_retention(app_env, schedule, with_redis):
    slots = [f"2026-03-0{d}T03:00:00Z" for d in (1, 2, 3)]
    made = []
    for slot in slots:
        result = run_backup_job(backup_run_config(schedule, slot))
        assert result.success
        outputs = step_outputs(result)
        assert outputs["start_backup.plan"]["lock"] == f"Redis lock {lock_key(schedule['id'])}"
        made.append(result.output_for_node("record_backup"))
    retention = step_outputs(result)["schedule_retention.result"]
    assert (retention["applied"], retention["deleted"], retention["kept"]) == (True, 1, 2)

    assert archives(app_env) == sorted(m["file_name"] for m in made[1:])
    rows = history_rows(app_env.database_url)
    assert [r[0] for r in rows] == ["completed", "completed"]
    assert [r[1].isoformat() for r in rows] == ["2026-03-02T03:00:00+00:00",
                                                 "2026-03-03T03:00:00+00:00"]
    row = catalog.get(app_env.database_url, schedule["id"])
    assert row["last_backup_id"] == made[-1]["id"] and row["last_run_at"]
    assert not redis_client(with_redis).exists(lock_key(schedule["id"]))

    # The same slot again (a retried tick, a second daemon): skipped, nothing made.
    again = run_backup_job(backup_run_config(schedule, slots[-1]))
    assert again.success
    reason = step_outputs(again)["start_backup.skipped"]["reason"]
    assert "slot 2026-03-03T03:00:00Z was already completed" in reason
    assert again.dagster_run.tags["backup_pipeline/skipped"] == reason
    assert archives(app_env) == sorted(m["file_name"] for m in made[1:])
    assert len(history_rows(app_env.database_url)) == 2


def test_a_held_redis_lock_skips_the_run_cleanly(app_env, schedule, with_redis):
    client = redis_client(with_redis)
    key = lock_key(schedule["id"])
    client.set(key, "another-container", px=60_000)
    try:
        result = run_backup_job(backup_run_config(schedule, "2026-03-01T03:00:00Z"))
    finally:
        assert client.get(key) == b"another-container"  # never released by a non-owner
        client.delete(key)
    assert result.success
    outputs = step_outputs(result)
    assert set(outputs) == {"start_backup.skipped"}
    assert "another run holds the Redis lock backup:schedule:" in \
        outputs["start_backup.skipped"]["reason"]
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert {"dump_database", "build_archive", "record_backup"} <= skipped
    assert history_rows(app_env.database_url) == [] and archives(app_env) == []
    with psycopg.connect(app_env.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM backup.schedule_slots").fetchone()[0] == 0


def test_without_redis_url_a_host_file_lock(app_env, schedule, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    app_env.backup_dir.mkdir(mode=0o700)
    held = FileLock(app_env.backup_dir / ".locks" / f"schedule-{schedule['id']}.lock")
    assert held.acquire()
    try:
        result = run_backup_job(backup_run_config(schedule, "2026-03-01T03:00:00Z"))
        assert "another run on this host holds file lock" in \
            step_outputs(result)["start_backup.skipped"]["reason"]
    finally:
        held.close()
    result = run_backup_job(backup_run_config(schedule, "2026-03-01T03:00:00Z"))
    assert step_outputs(result)["start_backup.plan"]["lock"] == \
        f"file lock schedule-{schedule['id']}.lock"
    assert result.output_for_node("record_backup")["status"] == "completed"


def test_a_failed_run_releases_lock_and_claim_for_a_retry(app_env, schedule, with_redis):
    bad = app_env.documents_dir / "1001" / os.fsdecode(b"bad-\xff.txt")
    bad.write_bytes(b"x")  # a name that is not UTF-8 fails the backup
    result = run_backup_job(backup_run_config(schedule, "2026-03-01T03:00:00Z"))
    assert not result.success
    assert not redis_client(with_redis).exists(lock_key(schedule["id"]))
    with psycopg.connect(app_env.database_url) as conn:
        assert conn.execute("SELECT state FROM backup.schedule_slots").fetchone()[0] == "failed"
    assert archives(app_env) == []

    bad.unlink()
    retry = run_backup_job(backup_run_config(schedule, "2026-03-01T03:00:00Z"))
    assert retry.success and step_outputs(retry)["start_backup.plan"]["attempt"] == 2
    assert [r[0] for r in history_rows(app_env.database_url)] == ["failed", "completed"]


def test_scheduled_config_needs_schedule_and_slot(app_env, schedule):
    config = backup_run_config(schedule, "2026-03-01T03:00:00Z")
    del config["ops"]["start_backup"]["config"]["slot_time"]
    result = run_backup_job(config)
    assert not result.success
    assert "needs schedule_id and slot_time" in failure_message(result)
    assert history_rows(app_env.database_url) == []


def test_manual_backups_are_untouched_by_scheduling(app_env, schedule):
    result = run_backup_job({"ops": {"start_backup": {"config": {"backup_type": "manual"}}}})
    assert result.success
    assert step_outputs(result)["schedule_retention.result"]["applied"] is False
    assert result.output_for_node("record_backup")["backup_type"] == "manual"


def test_a_database_a_crashed_restore_left_closed_is_reopened_before_the_slot_claim(
        app_env, schedule, with_redis, pg_server_url):
    """The scheduled backup's first catalog query is its slot claim: the database a restore
    closed for its swap (and died) is reopened before it."""
    live = database_name(app_env.database_url)
    staging = app_env.backup_dir / settle.RESTORE_STAGING / "0123abcd-0000-4000-8000-00000000000f"
    staging.mkdir(parents=True)
    mark = settle.mark_closed(staging, live)
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{live}" WITH ALLOW_CONNECTIONS false')
    result = run_backup_job(backup_run_config(schedule, "2026-03-01T03:00:00Z"))
    assert result.success, failure_message(result)
    assert result.output_for_node("record_backup")["backup_type"] == "scheduled"
    assert not mark.exists()
