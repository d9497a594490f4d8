"""Restore success and failure mails.

restore_job is another change's; until it lands, a small job of that name stands in for it
here. It keeps `backup.restore_runs` the way the real one is specified to (columns backup_id,
safety_backup_id, state, step, error_message, dagster_run_id), and without that table the mails
fall back to the run's config.
"""

import os

import dagster as dg
import psycopg
import pytest

from backup_pipeline import sensors
from backup_pipeline.catalog import history
from backup_pipeline_tests.notifications.conftest import RECIPIENTS, WEBSERVER, run_job

RESTORE_RUNS = """
CREATE TABLE IF NOT EXISTS backup.restore_runs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    backup_id        uuid NOT NULL,
    safety_backup_id uuid,
    state            text NOT NULL,
    step             text,
    error_message    text,
    dagster_run_id   text,
    started_at       timestamptz NOT NULL DEFAULT now()
)"""


class StandInRestoreConfig(dg.Config):
    backup_id: str
    dry_run: bool = True
    fail_in_step: str | None = None


@dg.op
def restore(context: dg.OpExecutionContext, config: StandInRestoreConfig) -> None:
    """Safety backup, then the restore; records its progress in restore_runs when it exists."""
    url = os.environ["DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        has_table = conn.execute("SELECT to_regclass('backup.restore_runs')").fetchone()[0]
        if config.dry_run:
            return
        safety = completed_backup(url, "safety", "restore", "motovaultpro_backup_safety.tar.gz")
        if has_table:
            conn.execute(
                "INSERT INTO backup.restore_runs (backup_id, safety_backup_id, state, step,"
                " dagster_run_id) VALUES (%s, %s, 'running', 'restore_database', %s)",
                (config.backup_id, safety["id"], context.run_id))
        if config.fail_in_step:
            error = f"psql stopped at line 42: relation \"film\" already exists ({safety['id']})"
            if has_table:
                conn.execute(
                    "UPDATE backup.restore_runs SET state = 'failed', step = %s,"
                    " error_message = %s WHERE dagster_run_id = %s",
                    (config.fail_in_step, error, context.run_id))
            raise RuntimeError(error)
        if has_table:
            conn.execute("UPDATE backup.restore_runs SET state = 'completed', step = 'done'"
                         " WHERE dagster_run_id = %s", (context.run_id,))


@dg.job(name="restore_job", executor_def=dg.in_process_executor)
def stand_in_restore_job():
    restore()


def completed_backup(url: str, backup_type: str, trigger: str, file_name: str) -> dict:
    row = history.create(url, backup_type=backup_type, trigger=trigger)
    return history.complete(url, row["id"], file_name=file_name, size_bytes=1234,
                            document_count=3)


@pytest.fixture
def restore_env(notify):
    with psycopg.connect(notify.url, autocommit=True) as conn:
        conn.execute(RESTORE_RUNS)
        conn.execute("TRUNCATE backup.restore_runs")
    notify.set(notify_on_success="true")
    backup = completed_backup(notify.url, "manual", "cli", "motovaultpro_backup_20240101.tar.gz")
    return notify, backup


def run_restore(notify, backup_id: str, **config) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {"restore": {"config": {"backup_id": backup_id, **config}}}}
    return run_job(notify.instance, "restore_job", run_config, job=stand_in_restore_job)


def test_restore_success_names_the_backup_and_the_safety_backup(restore_env):
    notify, backup = restore_env
    result = run_restore(notify, backup["id"], dry_run=False)
    assert result.success
    notify.evaluate(sensors.restore_success_email_sensor, result)
    notify.evaluate(sensors.restore_success_email_sensor, result)
    assert notify.recipients_mailed() == sorted(RECIPIENTS)
    mail = notify.smtp.received[0]
    assert mail.message["Subject"].startswith("Restore succeeded: "
                                              "motovaultpro_backup_20240101.tar.gz")
    fields = mail.fields
    assert fields["Backup restored"].startswith("motovaultpro_backup_20240101.tar.gz (manual,")
    assert backup["id"] in fields["Backup restored"]
    assert fields["Safety backup"].startswith("motovaultpro_backup_safety.tar.gz (safety,")
    assert fields["Run"] == f"{WEBSERVER}/runs/{result.run_id}"


def test_restore_failure_names_the_failed_step_and_error(restore_env):
    notify, backup = restore_env
    result = run_restore(notify, backup["id"], dry_run=False, fail_in_step="swap_database")
    assert not result.success
    notify.evaluate(sensors.restore_failure_email_sensor, result)
    assert notify.recipients_mailed() == sorted(RECIPIENTS)
    fields = notify.smtp.received[0].fields
    assert notify.smtp.received[0].message["Subject"].startswith("Restore FAILED")
    assert fields["Failed step"] == "swap_database"  # the catalog's step, finer than the op's
    assert fields["Error"].startswith('psql stopped at line 42: relation "film" already exists')
    assert fields["Backup"].startswith("motovaultpro_backup_20240101.tar.gz")
    assert fields["Safety backup"].startswith("motovaultpro_backup_safety.tar.gz")


def test_restore_preview_sends_nothing(restore_env):
    notify, backup = restore_env
    result = run_restore(notify, backup["id"])  # dry_run defaults to true
    assert result.success
    skip = notify.evaluate(sensors.restore_success_email_sensor, result)
    assert "preview" in skip.skip_message
    assert notify.smtp.received == []


def test_restore_mail_without_restore_runs_uses_the_run(restore_env):
    notify, backup = restore_env
    with psycopg.connect(notify.url, autocommit=True) as conn:
        conn.execute("DROP TABLE backup.restore_runs")
    result = run_restore(notify, backup["id"], dry_run=False, fail_in_step="swap_database")
    notify.evaluate(sensors.restore_failure_email_sensor, result)
    fields = notify.smtp.received[0].fields
    assert fields["Failed step"] == "restore"  # the Dagster op
    assert fields["Error"].startswith("psql stopped at line 42")
    assert fields["Backup"].startswith("motovaultpro_backup_20240101.tar.gz")
    assert fields["Safety backup"] == "none recorded"
