"""`backup-pipeline health`: exit 0 healthy, 1 warning, 2 failing, and one JSON object."""

from __future__ import annotations

import json
import os

import psycopg
import pytest

from backup_pipeline.catalog.migrate import migrate
from backup_pipeline.scheduling import catalog as schedules
from backup_pipeline_tests.conftest import DatabaseFactory
from backup_pipeline_tests.helpers import run_cli


@pytest.fixture
def catalog(databases: DatabaseFactory, tmp_path) -> dict[str, str]:
    url = databases.create()
    migrate(url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "DATABASE_URL": url, "DAGSTER_HOME": str(home),
            "BACKUP_DIR": str(tmp_path / "backups")}


def health(env: dict[str, str]) -> tuple[int, dict]:
    done = run_cli("health", "--json", env=env)
    assert done.stdout.count("\n{") == 0  # exactly one JSON object
    return done.returncode, json.loads(done.stdout)


def sql(env: dict[str, str], statement: str, *params) -> None:
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(statement, params)


def backup_of(env: dict[str, str], schedule_id: str, age: str) -> None:
    sql(env, "INSERT INTO backup.backup_history (backup_type, status, trigger, schedule_id,"
        " started_at, completed_at, size_bytes, database_bytes, documents_bytes,"
        " document_count, duration_seconds) VALUES ('scheduled', 'completed', 'schedule', %s,"
        " now() - %s::interval, now(), 1000, 600, 400, 3, 2.5)", schedule_id, age)


def test_exit_codes_follow_the_state(catalog: dict[str, str]):
    # nothing scheduled: nothing protects the data, a warning
    code, report = health(catalog)
    assert (code, report["status"]) == (1, "warning")
    assert report["problems"] == ["no backup schedule is enabled"]
    assert report["drill"] is None and report["offsite"] is None

    schedule = schedules.create(catalog["DATABASE_URL"], name="nightly", frequency="daily",
                                retention=7)
    backup_of(catalog, schedule["id"], "2 hours")
    code, report = health(catalog)
    assert (code, report["status"], report["problems"]) == (0, "healthy", [])
    [entry] = report["schedules"]
    assert entry["name"] == "nightly" and entry["state"] == "ok"
    assert entry["allowed_seconds"] == 36 * 3600
    assert report["last_backup"]["size_bytes"] == 1000
    assert report["outbox"]["waiting"] == 0

    # a notification that could not be sent: a warning
    sql(catalog, "INSERT INTO backup.email_outbox (dedupe_key, kind, recipient, subject, body,"
        " attempts, last_error) VALUES ('k', 'backup_failure', 'a@example.com', 's', 'b', 1,"
        " 'cannot reach SMTP server')")
    code, report = health(catalog)
    assert (code, report["status"]) == (1, "warning")
    assert "cannot reach SMTP server" in report["problems"][0]
    sql(catalog, "DELETE FROM backup.email_outbox")

    # the newest backup is older than a day and a half: late, failing
    sql(catalog, "UPDATE backup.backup_history SET started_at = now() - interval '37 hours'")
    code, report = health(catalog)
    assert (code, report["status"]) == (2, "failing")
    assert report["schedules"][0]["state"] == "late"
    assert report["problems"][0].startswith("schedule nightly is late")

    # a larger grace makes the same backup fresh enough
    code, _ = health({**catalog, "FRESHNESS_GRACE": "1"})
    assert code == 0


def test_text_output_and_an_unreadable_catalog(catalog: dict[str, str]):
    done = run_cli("health", env=catalog)
    assert done.returncode == 1 and done.stdout.startswith("status: WARNING")
    down = {**catalog, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    done = run_cli("health", "--json", env=down)
    assert done.returncode == 2
    assert json.loads(done.stdout)["status"] == "failing"
    assert len(done.stderr.strip().splitlines()) == 1 and "cannot judge" in done.stderr
    done = run_cli("health", env={**catalog, "FRESHNESS_GRACE": "half"})
    assert done.returncode == 2 and "FRESHNESS_GRACE" in done.stderr


def copy_of(env: dict[str, str], schedule_id: str, state: str) -> None:
    """An offsite copy row for the schedule's newest backup."""
    sql(env, "INSERT INTO backup.offsite_copies (backup_id, bucket, object_key, state,"
        " created_at) SELECT id, 'b', 'k/' || id, %s, now() - interval '3 days'"
        " FROM backup.backup_history WHERE schedule_id = %s ORDER BY started_at DESC LIMIT 1",
        state, schedule_id)


def test_an_offsite_copy_past_its_allowance_makes_the_schedule_late(catalog: dict[str, str]):
    """Where offsite copies are on, the newest copied backup must be as young as the newest
    backup: a backup made in time whose copies keep failing is late all the same."""
    env = {**catalog, "OFFSITE_URL": "s3://bucket/prefix"}
    schedule = schedules.create(env["DATABASE_URL"], name="nightly", frequency="daily",
                                retention=7)
    backup_of(env, schedule["id"], "2 days")
    copy_of(env, schedule["id"], "copied")
    backup_of(env, schedule["id"], "2 hours")
    copy_of(env, schedule["id"], "failed")
    code, report = health(env)
    assert (code, report["status"]) == (2, "failing")
    [entry] = report["schedules"]
    assert entry["state"] == "late" and entry["offsite_late"] is True
    assert round(entry["offsite_age_seconds"] / 3600) == 48
    assert any("no offsite copy for 48.0 h" in p for p in report["problems"])
    assert report["offsite"]["failed"] == 1 and report["offsite"]["lag_seconds"] > 0

    sql(env, "UPDATE backup.offsite_copies SET state = 'copied'")
    code, report = health(env)
    assert (code, report["status"], report["problems"]) == (0, "healthy", [])
    assert report["offsite"]["lag_seconds"] == 0

    code, report = health(catalog)  # copies off: their state does not count
    assert report["offsite"] is None and report["schedules"][0]["offsite_late"] is False
