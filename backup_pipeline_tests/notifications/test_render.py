"""What a mail says about the backup's trigger, read from the catalog."""

import psycopg
import pytest

from backup_pipeline.catalog import history
from backup_pipeline.notifications.facts import FinishedRun, backup_facts
from backup_pipeline.notifications.render import _duration, backup_email, run_url


def schedule(url: str, name: str, frequency: str) -> str:
    with psycopg.connect(url) as conn:
        return str(conn.execute(
            "INSERT INTO backup.backup_schedules (name, frequency, retention_count)"
            " VALUES (%s, %s, 7) RETURNING id", (name, frequency)).fetchone()[0])


def trigger_of(url: str, run: FinishedRun, **create) -> str:
    if create:
        row = history.create(url, dagster_run_id=run.run_id, **create)
        history.complete(url, row["id"], file_name=f"motovaultpro_backup_{run.run_id}.tar.gz",
                         size_bytes=2_500_000, document_count=4)
    with psycopg.connect(url) as conn:
        facts = backup_facts(conn, run)
    email = backup_email(run, facts, database="app", url=run_url(None, run.run_id))
    assert email.body.splitlines()[-1].split() == [
        "Run:", f"http://localhost:3000/runs/{run.run_id}"]
    return next(line.split(":", 1)[1].strip() for line in email.body.splitlines()
                if line.startswith("Trigger:"))


def test_trigger_names_the_schedule_safety_upload_or_manual(catalog_url):
    nightly = schedule(catalog_url, "nightly", "daily")
    ok = {"job_name": "backup_job", "succeeded": True}
    assert trigger_of(catalog_url, FinishedRun("r1", **ok), backup_type="scheduled",
                      trigger="schedule:nightly", schedule_id=nightly) == \
        'schedule "nightly" (daily)'
    assert trigger_of(catalog_url, FinishedRun("r2", **ok), backup_type="safety",
                      trigger="restore") == "safety backup before a restore"
    assert trigger_of(catalog_url, FinishedRun("r3", **ok), backup_type="uploaded",
                      trigger="upload") == "upload"
    assert trigger_of(catalog_url, FinishedRun("r4", **ok), backup_type="manual",
                      trigger="api") == "manual (api)"


def test_failed_scheduled_run_without_a_catalog_row_names_the_schedule(catalog_url):
    """A run that failed before it wrote its row (the database was down, say)."""
    run = FinishedRun("r5", "backup_job", succeeded=False,
                      tags={"dagster/schedule_name": "daily_backup_schedule"},
                      run_config={"ops": {"start_backup": {"config": {
                          "backup_type": "scheduled", "trigger": "schedule:weekly"}}}},
                      failed_step="start_backup", error="cannot connect to app")
    assert trigger_of(catalog_url, run) == 'schedule "weekly"'


@pytest.mark.parametrize(("seconds", "text"), [
    (4.04, "4.0 s"), (75, "1 min 15 s"), (3 * 3600 + 62, "3 h 01 min 02 s"), (None, "unknown"),
])
def test_durations_read_naturally(seconds, text):
    assert _duration(seconds) == text
