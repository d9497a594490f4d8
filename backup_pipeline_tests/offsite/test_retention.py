"""Deleting a backup (retention or `delete`) deletes its copy, except while Object Lock holds
it: then the copy stays, the catalog remembers it, and the sweep deletes it once it may."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import botocore.exceptions
import pytest

from backup_pipeline.offsite import catalog, service
from backup_pipeline.scheduling import catalog as schedules
from backup_pipeline_tests.helpers import run_backup_job, run_cli
from backup_pipeline_tests.offsite.conftest import Offsite, make_client, use_offsite
from backup_pipeline_tests.scheduling.helpers import backup_run_config
from backup_pipeline_tests.scheduling.helpers import run_backup_job as run_scheduled

LOCK_SECONDS = 6


def test_retention_removes_the_copy(offsite: Offsite):
    nightly = schedules.create(offsite.env.database_url, name="nightly", frequency="daily",
                               retention=1)
    first = run_scheduled(backup_run_config(nightly, "2026-01-01T03:00:00+00:00"))
    old = first.output_for_node("record_backup")
    assert len(offsite.objects()) == 1
    second = run_scheduled(backup_run_config(nightly, "2026-01-02T03:00:00+00:00"))
    new = second.output_for_node("record_backup")
    applied = second.output_for_node("schedule_retention")
    assert applied["deleted"] == 1
    assert [o["Key"] for o in offsite.objects()] == [f"nightly/{new['file_name']}.age"]
    assert catalog.get(offsite.env.database_url, old["id"]) is None


def test_delete_removes_the_copy(offsite: Offsite):
    row = run_backup_job().output_for_node("record_backup")
    done = json.loads(run_cli("delete", row["id"], "--json").stdout)
    assert done["offsite"] == {"removed": True, "key": f"nightly/{row['file_name']}.age"}
    assert offsite.objects() == []


def test_delete_with_storage_down_keeps_the_local_deletion(offsite: Offsite, monkeypatch):
    row = run_backup_job().output_for_node("record_backup")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens
    done = run_cli("delete", row["id"], "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["offsite"]["removed"] is False
    assert not (offsite.env.backup_dir / row["file_name"]).exists()
    assert catalog.get(offsite.env.database_url, row["id"])["backup_deleted_at"]
    monkeypatch.setenv("S3_ENDPOINT_URL", offsite.server.url)
    report = service.catch_up(offsite.env.settings, offsite.config, make_client(offsite))
    assert report.removed == [f"nightly/{row['file_name']}.age"]
    assert offsite.objects() == [] and catalog.get(offsite.env.database_url, row["id"]) is None


@pytest.fixture
def locked(app_env, moto, tmp_path: Path, monkeypatch) -> Offsite:
    return use_offsite(monkeypatch, app_env, moto, tmp_path, lock=True,
                       lock_days=f"{LOCK_SECONDS / 86400:.8f}")


def _versions(offsite: Offsite) -> list[str]:
    listed = offsite.client.list_object_versions(Bucket=offsite.bucket)
    return [v["VersionId"] for v in listed.get("Versions", [])]


def test_object_lock_holds_the_copy_until_retain_until(locked: Offsite):
    row = run_backup_job().output_for_node("record_backup")
    copy = catalog.get(locked.env.database_url, row["id"])
    assert copy["retain_until"] and copy["version_id"]
    # immutable: even these credentials cannot delete the version while it is locked
    with pytest.raises(botocore.exceptions.ClientError):
        locked.client.delete_object(Bucket=locked.bucket, Key=copy["key"],
                                    VersionId=copy["version_id"])

    done = json.loads(run_cli("delete", row["id"], "--json").stdout)
    assert done["file_removed"] and done["offsite"]["removed"] is False
    assert "Object Lock" in done["offsite"]["reason"]
    assert _versions(locked) == [copy["version_id"]]
    assert catalog.get(locked.env.database_url, row["id"])["backup_deleted_at"]

    report = service.catch_up(locked.env.settings, locked.config, make_client(locked))
    assert report.removed == [] and [c["key"] for c in report.still_locked] == [copy["key"]]

    until = datetime.fromisoformat(copy["retain_until"])
    while datetime.now(UTC) <= until:  # waiting for the lock to run out, not timing anything
        time.sleep(0.5)
    report = service.catch_up(locked.env.settings, locked.config, make_client(locked))
    assert report.removed == [copy["key"]] and report.errors == []
    assert _versions(locked) == []
    assert catalog.get(locked.env.database_url, row["id"]) is None
