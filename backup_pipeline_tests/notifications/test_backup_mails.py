"""Backup success and failure mails from the run-status sensors, over real backup_job runs
executed in process (as the CLI does), delivered to a real SMTP server."""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from backup_pipeline import sensors
from backup_pipeline.catalog import history
from backup_pipeline.scheduling import catalog as schedules
from backup_pipeline_tests.notifications.conftest import RECIPIENTS, SENDER, WEBSERVER


def test_success_and_failure_mail_each_recipient_exactly_once(notify):
    notify.set(notify_on_success="true")

    ok = notify.backup(note="nightly check")
    assert ok.success
    row = history.find_by_run(notify.url, ok.run_id)
    for _ in range(2):  # a second look at the same run (a retried tick) sends nothing more
        notify.evaluate(sensors.backup_success_email_sensor, ok)
    assert len(notify.smtp.received) == 2
    for recipient in RECIPIENTS:
        [mail] = notify.smtp.recorder.to(recipient)
        assert mail.rcpt_tos == [recipient] and mail.mail_from == SENDER
        assert mail.message["To"] == recipient
        assert mail.message["Subject"].startswith(f"Backup succeeded: {row['file_name']}")
        assert mail.message["Auto-Submitted"] == "auto-generated"
        fields = mail.fields
        assert fields["Trigger"] == "manual (cli)"
        assert fields["Archive"] == row["file_name"]
        assert fields["Size"].endswith(f"({row['size_bytes']:,} bytes)")
        assert fields["Documents"] == str(row["document_count"]) == "6"
        assert fields["Duration"] == f"{row['duration_seconds']:.1f} s"
        assert fields["Backup id"] == row["id"]
        assert fields["Run"] == f"{WEBSERVER}/runs/{ok.run_id}"

    failed = notify.failing_backup()
    notify.evaluate(sensors.backup_failure_email_sensor, failed)
    notify.evaluate(sensors.backup_failure_email_sensor, failed)
    failure_mails = [m for m in notify.smtp.received if "FAILED" in m.message["Subject"]]
    assert sorted(r for m in failure_mails for r in m.rcpt_tos) == sorted(RECIPIENTS)
    fields = failure_mails[0].fields
    assert fields["Failed step"] == "collect_documents"  # the tree is scanned in that step
    # the root cause, not the error of a step that failed after it
    assert fields["Error"].endswith("is not UTF-8; rename it")
    assert fields["Trigger"] == "manual (cli)"
    assert fields["Run"] == f"{WEBSERVER}/runs/{failed.run_id}"
    assert {r["state"] for r in notify.rows()} == {"sent"}
    assert len(notify.smtp.received) == 4


def test_smtp_down_when_the_run_ends_is_delivered_later_exactly_once(notify):
    notify.smtp.stop()  # the port stays reserved for the test: nothing listens until start()
    failed = notify.failing_backup()
    retry = {"retry_first_seconds": 1}

    notify.evaluate(sensors.backup_failure_email_sensor, failed, **retry)
    rows = notify.rows()
    assert [(r["state"], r["attempts"]) for r in rows] == [("pending", 1), ("pending", 1)]
    assert f"cannot reach SMTP server 127.0.0.1:{notify.smtp.port}: Connection refused" == \
        rows[0]["last_error"]

    notify.smtp.start()
    deadline = time.monotonic() + 30
    while len(notify.smtp.received) < 2 and time.monotonic() < deadline:
        notify.outbox_tick(**retry)  # sends once the message's backoff has passed
        time.sleep(0.2)
    for _ in range(3):  # later ticks, and a second look at the run, send nothing more
        notify.outbox_tick(**retry)
        notify.evaluate(sensors.backup_failure_email_sensor, failed, **retry)
    assert notify.recipients_mailed() == sorted(RECIPIENTS)
    rows = notify.rows()
    assert [r["state"] for r in rows] == ["sent", "sent"]
    assert all(r["attempts"] >= 2 and r["sent_at"] is not None for r in rows)


def test_notifications_off_or_success_mails_off_send_nothing(notify):
    ok = notify.backup()  # notify_on_success is false by default
    result = notify.evaluate(sensors.backup_success_email_sensor, ok)
    assert isinstance(result, dg.SkipReason)
    assert "notify_on_success=false" in result.skip_message

    notify.set(email_enabled="false", notify_on_success="true")
    failed = notify.failing_backup()
    result = notify.evaluate(sensors.backup_failure_email_sensor, failed)
    assert "email_enabled=false" in result.skip_message

    # turning mails on afterwards does not mail about runs decided while they were off
    notify.set(email_enabled="true")
    notify.evaluate(sensors.backup_failure_email_sensor, failed)
    notify.evaluate(sensors.backup_success_email_sensor, ok)
    notify.outbox_tick()
    assert notify.smtp.received == [] and notify.rows() == []
    assert [d["outcome"] for d in notify.decisions()] == ["skipped", "skipped"]


def test_no_recipients_or_no_smtp_host_send_nothing_and_say_why(notify, monkeypatch):
    notify.set(email_recipients="")
    failed = notify.failing_backup()
    result = notify.evaluate(sensors.backup_failure_email_sensor, failed)
    assert "no recipients are set" in result.skip_message

    notify.set(email_recipients="ops@example.com")
    monkeypatch.delenv("SMTP_HOST")
    again = notify.backup()
    result = notify.evaluate(sensors.backup_failure_email_sensor, again)
    assert "SMTP_HOST is not set" in result.skip_message
    assert "SMTP_HOST is not set" in notify.outbox_tick().skip_message
    assert notify.smtp.received == [] and notify.rows() == []


def test_skipped_scheduled_run_sends_nothing(notify):
    """A second run for a slot that is already done succeeds without making a backup."""
    notify.set(notify_on_success="true")
    nightly = schedules.create(notify.url, name="nightly", frequency="daily", retention=2)
    config = {"backup_type": "scheduled", "trigger": "schedule:nightly",
              "schedule_id": nightly["id"], "slot_time": "2026-03-01T03:00:00Z"}

    done = notify.backup(**config)
    skipped = notify.backup(**config)
    assert done.success and skipped.success
    notify.evaluate(sensors.backup_success_email_sensor, done)
    result = notify.evaluate(sensors.backup_success_email_sensor, skipped)
    assert result.skip_message.startswith("backup success of run")
    assert "the run made no backup (" in result.skip_message
    assert "was already completed" in result.skip_message
    assert notify.recipients_mailed() == sorted(RECIPIENTS)  # the run that made one
    assert notify.smtp.received[0].fields["Trigger"] == 'schedule "nightly" (daily)'


def test_sensor_ignores_runs_of_other_jobs(notify):
    ok = notify.backup()
    result = notify.evaluate(sensors.restore_success_email_sensor, ok)
    assert "is a backup_job run, not restore_job" in result.skip_message
    assert notify.decisions() == []


def test_catch_up_mails_about_runs_no_sensor_handled(notify):
    """A run whose run-status sensor never looked at it (daemon down, or the sensor failed):
    the outbox sensor's catch-up decides it, once."""
    failed = notify.failing_backup()
    ended = notify.instance.get_run_record_by_id(failed.run_id).end_time
    before = datetime.fromtimestamp(ended + 1, UTC)
    window = {"ended_before": before, "ended_after": before - timedelta(hours=1)}
    decided = sensors.catch_up(notify.instance, notify.url, mail_configured=True, **window)
    again = sensors.catch_up(notify.instance, notify.url, mail_configured=True, **window)
    assert [(d.run_id, d.outcome) for d in decided] == [(failed.run_id, "queued")]
    assert again == []
    notify.outbox_tick()
    assert notify.recipients_mailed() == sorted(RECIPIENTS)
    assert notify.decisions()[0]["decided_by"] == "email_outbox_sensor (catch-up)"
    # the run-status sensor coming late to the same run sends nothing more
    notify.evaluate(sensors.backup_failure_email_sensor, failed)
    notify.outbox_tick()
    assert len(notify.smtp.received) == 2


def test_bad_smtp_settings_keep_mail_queued_until_they_are_fixed(notify, monkeypatch):
    monkeypatch.setenv("SMTP_SECURITY", "tls")
    failed = notify.failing_backup()
    notify.evaluate(sensors.backup_failure_email_sensor, failed)
    assert [(r["state"], r["attempts"]) for r in notify.rows()] == [("pending", 0)] * 2
    assert "the SMTP settings are invalid" in notify.outbox_tick().skip_message

    monkeypatch.setenv("SMTP_SECURITY", "none")
    assert notify.outbox_tick().skip_message == "outbox: sent 2"
    assert notify.recipients_mailed() == sorted(RECIPIENTS)
