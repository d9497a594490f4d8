"""`GET /metrics`: Prometheus' text format, parsed by prometheus-client's own parser, behind
the admin token."""

from __future__ import annotations

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from backup_pipeline.scheduling import catalog as schedules
from backup_pipeline_tests.api.conftest import ApiServer
from backup_pipeline_tests.conftest import AppEnv


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_parse_and_tell_the_state(api: ApiServer, app_env: AppEnv):
    with api.client(token=None) as client:
        assert client.get("/metrics").status_code == 401
    late = schedules.create(app_env.database_url, name="nightly", frequency="daily", retention=3)
    fresh = schedules.create(app_env.database_url, name="hourly", frequency="hourly",
                             retention=3)
    with psycopg.connect(app_env.database_url, autocommit=True) as conn:
        conn.execute("UPDATE backup.backup_schedules SET created_at = now() - interval '3 days'")
        conn.execute(
            "INSERT INTO backup.backup_history (backup_type, status, trigger, schedule_id,"
            " started_at, completed_at, size_bytes, database_bytes, documents_bytes,"
            " document_count, duration_seconds) VALUES ('scheduled', 'completed', 'schedule',"
            " %s, now() - interval '5 minutes', now(), 1000, 600, 400, 3, 2.5)", (fresh["id"],))
        conn.execute("INSERT INTO backup.email_outbox (dedupe_key, kind, recipient, subject,"
                     " body) VALUES ('k', 'backup_failure', 'a@example.com', 's', 'b')")
    with api.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    nightly = (("frequency", "daily"), ("schedule", "nightly"))
    hourly = (("frequency", "hourly"), ("schedule", "hourly"))
    assert found[("backup_pipeline_health_status", ())] == 2
    assert found[("backup_pipeline_schedule_late", nightly)] == 1
    assert found[("backup_pipeline_schedule_late", hourly)] == 0
    assert ("backup_pipeline_schedule_last_success_timestamp_seconds", nightly) not in found
    assert found[("backup_pipeline_schedule_last_success_timestamp_seconds", hourly)] > 0
    assert found[("backup_pipeline_schedule_allowed_age_seconds", nightly)] == 36 * 3600
    assert found[("backup_pipeline_last_backup_size_bytes", (("part", "archive"),))] == 1000
    assert found[("backup_pipeline_last_backup_duration_seconds", ())] == 2.5
    assert found[("backup_pipeline_outbox_messages",
                  (("channel", "email"), ("state", "pending")))] == 1
    assert found[("backup_pipeline_outbox_waiting", ())] == 1
    # no drill and no offsite facts yet: no such metrics rather than made-up values
    assert not any(name.startswith(("backup_pipeline_restore_drill", "backup_pipeline_offsite"))
                   for name, _ in found)
    assert late["id"]
