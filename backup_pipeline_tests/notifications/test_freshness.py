"""Freshness: a late schedule gets exactly one "late" and one "recovered" notification, by mail
(a real SMTP server) and through Apprise's JSON target (a real local HTTP receiver), recorded as
the backup_freshness asset check."""

from __future__ import annotations

import dagster as dg
import psycopg

from backup_pipeline.checks import FRESHNESS_KEY
from backup_pipeline.scheduling import catalog as schedules
from backup_pipeline.sensors import backup_freshness_sensor
from backup_pipeline_tests.notifications.conftest import RECIPIENTS, Notify, resources
from backup_pipeline_tests.notifications.http_receiver import HttpReceiver


def late_schedule(url: str, name: str = "nightly", frequency: str = "daily",
                  age: str = "40 hours") -> str:
    """An enabled schedule created `age` ago that never completed a backup."""
    schedule = schedules.create(url, name=name, frequency=frequency, retention=3)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE backup.backup_schedules SET created_at = now() - %s::interval"
                     " WHERE id = %s", (age, schedule["id"]))
    return schedule["id"]


def complete_backup(url: str, schedule_id: str, age: str = "1 minute") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO backup.backup_history (backup_type, status, trigger, schedule_id,"
            " started_at, completed_at) VALUES ('scheduled', 'completed', 'schedule', %s,"
            " now() - %s::interval, now())", (schedule_id, age))


def tick(notify: Notify, **smtp):
    """One tick of the freshness sensor, each with a fresh context (as after a restart)."""
    context = dg.build_sensor_context(instance=notify.instance,
                                      resources=resources(notify.url, **smtp))
    return backup_freshness_sensor(context)


def check_history(instance: dg.DagsterInstance) -> list[bool]:
    records = instance.event_log_storage.get_asset_check_execution_history(FRESHNESS_KEY,
                                                                           limit=20)
    return [r.evaluation.passed for r in reversed(records)]


def test_one_late_and_one_recovered_notification_by_mail_and_url(
        notify: Notify, http_receiver: HttpReceiver):
    notify.set(notify_urls=http_receiver.url())
    schedule_id = late_schedule(notify.url)
    fresh_id = late_schedule(notify.url, name="hourly-ok", frequency="hourly", age="10 days")
    complete_backup(notify.url, fresh_id, age="10 minutes")

    first = tick(notify)
    assert "late: nightly" in first.skip_message and "newly late: nightly" in first.skip_message
    tick(notify)
    tick(notify)
    late_mails = [m for m in notify.smtp.received if "LATE" in m.message["Subject"]]
    assert sorted(r for m in late_mails for r in m.rcpt_tos) == sorted(RECIPIENTS)
    assert late_mails[0].message["Subject"].startswith("Backups are LATE: schedule nightly")
    assert late_mails[0].fields["Newest backup"] == "none yet"
    assert [p.payload["type"] for p in http_receiver.posts] == ["failure"]
    assert http_receiver.posts[0].path == "/hooks/backup-token-7c1d9e"
    assert "Backups are LATE: schedule nightly" in http_receiver.posts[0].payload["title"]

    complete_backup(notify.url, schedule_id)
    recovered = tick(notify)
    assert "recovered: nightly" in recovered.skip_message
    tick(notify)
    subjects = sorted(m.message["Subject"].split(":")[0] for m in notify.smtp.received)
    assert subjects == ["Backups are LATE"] * 2 + ["Backups recovered"] * 2
    assert notify.recipients_mailed() == sorted(RECIPIENTS * 2)
    assert [p.payload["type"] for p in http_receiver.posts] == ["failure", "success"]
    assert all(r["state"] == "sent" for r in notify.rows())

    # the Checks tab: failed while late, passed once recovered
    history = check_history(notify.instance)
    assert history[0] is False and history[-1] is True

    # late again later: a new breach, a new pair of notifications
    with psycopg.connect(notify.url, autocommit=True) as conn:
        conn.execute("UPDATE backup.backup_history SET started_at = now() - interval '3 days'"
                     " WHERE schedule_id = %s", (schedule_id,))
    tick(notify)
    assert [p.payload["type"] for p in http_receiver.posts] == ["failure", "success", "failure"]


def test_a_target_that_is_down_keeps_the_message_until_it_is_back(
        notify: Notify, http_receiver: HttpReceiver):
    notify.set(notify_urls=http_receiver.url(), email_recipients="")
    http_receiver.stop()
    late_schedule(notify.url)
    tick(notify, retry_first_seconds=0)
    [row] = notify.rows()
    assert row["channel"] == "apprise" and row["state"] == "pending" and row["attempts"] == 1
    assert "backup-token" not in row["last_error"]
    assert row["last_error"].startswith("json://127.0.0.1 did not take the message")

    http_receiver.start()
    notify.outbox_tick(retry_first_seconds=0)
    notify.outbox_tick(retry_first_seconds=0)
    tick(notify, retry_first_seconds=0)
    assert len(http_receiver.posts) == 1
    [row] = notify.rows()
    assert row["state"] == "sent" and row["attempts"] == 2


def test_disabling_a_late_schedule_ends_its_breach(notify: Notify):
    schedule_id = late_schedule(notify.url)
    tick(notify)
    schedules.update(notify.url, schedule_id, enabled=False)
    tick(notify)
    tick(notify)
    subjects = [m.message["Subject"] for m in notify.smtp.received]
    assert len(subjects) == 4 and sum("recovered" in s for s in subjects) == 2
    recovered = next(m for m in notify.smtp.received if "recovered" in m.message["Subject"])
    assert "no longer watched" in recovered.fields["Result"]


def test_nothing_is_queued_when_failure_notifications_are_off(notify: Notify):
    notify.set(notify_on_failure=False)
    late_schedule(notify.url)
    assert "late: nightly" in tick(notify).skip_message
    assert notify.rows() == [] and notify.smtp.received == []
