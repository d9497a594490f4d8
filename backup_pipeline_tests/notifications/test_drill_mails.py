"""A failed restore drill is mailed like a failed backup; a drill that passed is not."""

import secrets

import psycopg

from backup_pipeline import sensors
from backup_pipeline_tests.drills.test_drill import wrong_count_archive
from backup_pipeline_tests.notifications.conftest import RECIPIENTS, WEBSERVER, run_job


def test_a_failed_drill_is_mailed_naming_the_table(notify, tmp_path):
    table = f"drill_mail_{secrets.token_hex(4)}"
    with psycopg.connect(notify.url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{table} AS SELECT generate_series(1, 5) AS n")
    try:
        bad = wrong_count_archive(notify.app, tmp_path, table=f"public.{table}")
    finally:
        with psycopg.connect(notify.url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE public.{table}")
    result = run_job(notify.instance, "drill_job",
                     {"ops": {"run_restore_drill": {"config": {"backup_id": bad}}}})
    assert not result.success
    notify.evaluate(sensors.drill_failure_email_sensor, result)
    notify.evaluate(sensors.drill_failure_email_sensor, result)  # a retried tick: no more
    assert notify.recipients_mailed() == sorted(RECIPIENTS)
    mail = notify.smtp.received[0]
    assert mail.message["Subject"].startswith("Restore drill FAILED")
    assert f"public.{table}: 5 rows restored, the manifest says 6" in mail.fields["Error"]
    assert bad in mail.fields["Backup"]
    assert mail.fields["Run"] == f"{WEBSERVER}/runs/{result.run_id}"


def test_a_drill_that_passed_is_not_mailed(notify):
    notify.set(notify_on_success="true")
    assert notify.backup().success
    result = run_job(notify.instance, "drill_job", {})
    assert result.success
    notify.evaluate(sensors.drill_failure_email_sensor, result)
    assert notify.smtp.received == []
