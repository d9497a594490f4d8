"""Restore success and failure mails, over real restore_job runs (with their nested safety
backup runs) executed in process, delivered to a real SMTP server."""

from contextlib import contextmanager

import psycopg
import pytest

from backup_pipeline import sensors
from backup_pipeline.catalog import history
from backup_pipeline_tests.notifications.conftest import (
    RECIPIENTS,
    WEBSERVER,
    break_documents,
    run_job,
)


@pytest.fixture
def restore_env(notify):
    notify.set(notify_on_success="true")
    made = notify.backup()
    assert made.success
    return notify, history.find_by_run(notify.url, made.run_id)


def run_restore(notify, backup_id: str, **config):
    run_config = {"ops": {"start_restore": {"config": {"backup_id": backup_id, **config}}}}
    return run_job(notify.instance, "restore_job", run_config,
                   tags={"backup_pipeline/trigger": "cli"})


def safety_of(notify) -> dict:
    [row] = history.list_page(notify.url, backup_type="safety")["items"]
    return row


def test_restore_success_names_the_backup_and_the_safety_backup(restore_env):
    notify, backup = restore_env
    result = run_restore(notify, backup["id"], dry_run=False)
    assert result.success
    notify.evaluate(sensors.restore_success_email_sensor, result)
    notify.evaluate(sensors.restore_success_email_sensor, result)  # a retried tick: no more
    assert notify.recipients_mailed() == sorted(RECIPIENTS)
    mail = notify.smtp.received[0]
    assert mail.message["Subject"].startswith(f"Restore succeeded: {backup['file_name']}")
    fields = mail.fields
    assert fields["Backup restored"].startswith(f"{backup['file_name']} (manual,")
    assert backup["id"] in fields["Backup restored"]
    safety = safety_of(notify)
    assert fields["Safety backup"].startswith(f"{safety['file_name']} (safety,")
    assert fields["Run"] == f"{WEBSERVER}/runs/{result.run_id}"


def test_restore_failure_names_the_failed_step_and_error(restore_env):
    notify, backup = restore_env
    break_documents(notify.app.documents_dir)  # the safety backup cannot archive them
    result = run_restore(notify, backup["id"], dry_run=False)
    assert not result.success
    notify.evaluate(sensors.restore_failure_email_sensor, result)
    assert notify.recipients_mailed() == sorted(RECIPIENTS)
    mail = notify.smtp.received[0]
    assert mail.message["Subject"].startswith("Restore FAILED")
    fields = mail.fields
    assert fields["Failed step"] == "safety_backup"
    assert "the safety backup failed" in fields["Error"] and "not UTF-8" in fields["Error"]
    assert fields["Backup"].startswith(backup["file_name"])


def test_restore_preview_sends_nothing(restore_env):
    notify, backup = restore_env
    result = run_restore(notify, backup["id"])  # dry_run defaults to true
    assert result.success
    skip = notify.evaluate(sensors.restore_success_email_sensor, result)
    assert "preview" in skip.skip_message
    assert notify.smtp.received == []


@contextmanager
def restore_runs_hidden(url: str):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE backup.restore_runs RENAME TO restore_runs_hidden")
    try:
        yield
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE backup.restore_runs_hidden RENAME TO restore_runs")


def test_restore_mail_without_restore_runs_uses_the_run(restore_env):
    notify, backup = restore_env
    break_documents(notify.app.documents_dir)
    result = run_restore(notify, backup["id"], dry_run=False)
    assert not result.success
    with restore_runs_hidden(notify.url):
        notify.evaluate(sensors.restore_failure_email_sensor, result)
    fields = notify.smtp.received[0].fields
    assert fields["Failed step"] == "safety_backup"  # now the Dagster op of that name
    assert "the safety backup failed" in fields["Error"]
    assert fields["Backup"].startswith(backup["file_name"])
    assert fields["Safety backup"] == "none recorded"
