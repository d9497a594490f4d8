"""The storage down during a backup: the backup completes, the copy is recorded as failed and
mailed about once (through the outbox), and the catch-up copies it when the storage is back."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
import pytest

from backup_pipeline.definitions import defs
from backup_pipeline.notifications import settings as notification_settings
from backup_pipeline.offsite import catalog, service, storage
from backup_pipeline.offsite.config import OffsiteError
from backup_pipeline.ops.offsite import COPY_RETRY
from backup_pipeline_tests.helpers import QUIET, run_backup_job
from backup_pipeline_tests.offsite.conftest import MotoServer, Offsite, use_offsite


@pytest.fixture
def own_server(tmp_path: Path):
    server = MotoServer(tmp_path / "moto.log").start()
    yield server
    server.stop()


def _outbox(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT kind, recipient, subject FROM backup.email_outbox"
                            " ORDER BY id").fetchall()


def _sensor_requests(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    repo = defs.get_repository_def()
    with dg.build_sensor_context(instance=instance,
                                 resources=repo.get_top_level_resources()) as context:
        data = repo.get_sensor_def("offsite_catch_up_sensor").evaluate_tick(context)
    return data.run_requests or []


def test_storage_down_during_backup_then_caught_up(app_env, own_server: MotoServer,
                                                   tmp_path: Path, monkeypatch):
    offsite = use_offsite(monkeypatch, app_env, own_server, tmp_path)
    notification_settings.update(app_env.database_url, {"email_recipients": "ops@example.com"})
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")  # queued only; the outbox sensor would send
    monkeypatch.setenv("EMAIL_FROM", "backups@example.com")
    own_server.stop()

    with dg.DagsterInstance.ephemeral() as instance:
        result = run_backup_job(instance)
        assert result.success  # the backup stands
        row = result.output_for_node("record_backup")
        assert result.output_for_node("offsite_copy")["state"] == "failed"
        retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert len(retries) == COPY_RETRY.max_retries
        assert (app_env.backup_dir / row["file_name"]).is_file()
        copy = catalog.get(app_env.database_url, row["id"])
        assert copy["state"] == "failed" and copy["attempts"] == COPY_RETRY.max_retries + 1
        assert copy["last_error"] and "testing-secret" not in copy["last_error"]
        mails = _outbox(app_env.database_url)
        assert [(k, r) for k, r, _ in mails] == [("offsite_failure", "ops@example.com")]
        assert row["file_name"] in mails[0][2]
        lag = service.status(app_env.settings, offsite.config)
        assert lag["failed"] == 1 and lag["lag_seconds"] > 0

        # not due before its retry time; a failure while still failing mails no more
        assert _sensor_requests(instance) == []
        with pytest.raises(OffsiteError):
            service.push(app_env.settings, offsite.config, storage.make_client(offsite.config),
                         row["id"], mail=service.Mail(configured=True))
        assert len(_outbox(app_env.database_url)) == 1

        own_server.start()  # back, empty: moto keeps buckets in memory
        own_server.client().create_bucket(Bucket=offsite.bucket)
        with psycopg.connect(app_env.database_url) as conn:
            conn.execute("UPDATE backup.offsite_copies SET next_attempt_at = now()")
        requests = _sensor_requests(instance)
        assert len(requests) == 1
        caught_up = defs.get_job_def("offsite_job").execute_in_process(
            run_config={**QUIET, **(requests[0].run_config or {})}, instance=instance,
            tags=requests[0].tags)
        assert caught_up.success
    copy = catalog.get(app_env.database_url, row["id"])
    assert copy["state"] == "copied" and copy["last_error"] is None
    assert offsite.objects()[0]["Key"] == copy["key"]
    assert service.status(app_env.settings, offsite.config)["lag_seconds"] == 0


def test_changed_archive_is_not_copied(offsite: Offsite):
    row = run_backup_job().output_for_node("record_backup")
    archive = offsite.env.backup_dir / row["file_name"]
    offsite.client.delete_object(Bucket=offsite.bucket, Key=f"nightly/{row['file_name']}.age")
    with open(archive, "r+b") as f:  # one byte flipped on disk after the backup
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(OffsiteError, match="sha256"):
        service.push(offsite.env.settings, offsite.config, storage.make_client(offsite.config),
                     row["id"])
    assert offsite.objects() == []
    assert catalog.get(offsite.env.database_url, row["id"])["state"] == "failed"
