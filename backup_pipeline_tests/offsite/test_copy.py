"""The copy after each backup: ciphertext in the bucket that the age CLI decrypts to the very
archive, object metadata that names the backup, and the step's asset materialization."""

from __future__ import annotations

import hashlib
import json
import subprocess

import dagster as dg

from backup_pipeline.backup import inventory
from backup_pipeline.offsite import storage
from backup_pipeline.offsite.crypto import AGE_MAGIC
from backup_pipeline.ops.offsite import OFFSITE_ASSET
from backup_pipeline_tests.helpers import run_backup_job, run_cli
from backup_pipeline_tests.offsite.conftest import Offsite, object_bytes


def _backup(instance=None) -> dict:
    result = run_backup_job(instance)
    assert result.success
    return result.output_for_node("record_backup")


def test_copy_after_backup_is_age_ciphertext_of_the_archive(offsite: Offsite, tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_backup_job(instance)
        assert result.success
        row = result.output_for_node("record_backup")
        copy = result.output_for_node("offsite_copy")
        materialized = [e for e in result.get_asset_materialization_events()
                        if e.asset_key == OFFSITE_ASSET]
    archive = offsite.env.backup_dir / row["file_name"]
    key = f"nightly/{row['file_name']}.age"
    assert copy["state"] == "copied" and copy["key"] == key
    assert len(materialized) == 1

    data = object_bytes(offsite, key)
    assert data.startswith(AGE_MAGIC)  # ciphertext, not the gzip archive
    assert archive.read_bytes()[:64] not in data
    assert copy["bytes"] == len(data)
    assert copy["object_sha256"] == hashlib.sha256(data).hexdigest()
    assert copy["archive_sha256"] == row["sha256"]

    encrypted = tmp_path / "copy.age"
    encrypted.write_bytes(data)
    plain = subprocess.run(["age", "-d", "-i", str(offsite.key.identity_file), str(encrypted)],
                           capture_output=True, check=True).stdout
    assert plain == archive.read_bytes()

    head = offsite.client.head_object(Bucket=offsite.bucket, Key=key)
    assert head["Metadata"][storage.META_BACKUP_ID] == row["id"]
    assert head["Metadata"][storage.META_TYPE] == "manual"
    assert head["Metadata"][storage.META_ARCHIVE_SHA256] == row["sha256"]
    assert head["Metadata"][storage.META_CREATED]

    shown = inventory.show(offsite.env.settings, row["id"])["offsite"]
    assert shown["state"] == "copied" and shown["key"] == key and shown["copied_at"]


def test_cli_status_list_show_and_push_again(offsite: Offsite):
    row = _backup()
    listed = json.loads(run_cli("offsite", "list", "--json").stdout)
    assert [i["key"] for i in listed["items"]] == [f"nightly/{row['file_name']}.age"]
    assert listed["items"][0]["backup_id"] == row["id"]
    assert listed["items"][0]["created"]

    status = json.loads(run_cli("offsite", "status", "--json").stdout)
    assert status["enabled"] and status["copied"] == 1 and status["failed"] == 0

    shown = json.loads(run_cli("show", row["id"], "--json").stdout)
    assert shown["offsite"]["state"] == "copied"

    pushed = run_cli("offsite", "push", row["id"], "--json")
    assert pushed.returncode == 0, pushed.stderr
    again = json.loads(pushed.stdout)
    assert again["state"] == "copied" and again["attempts"] == 2


def test_show_without_offsite_has_null(app_env, monkeypatch):
    monkeypatch.delenv("OFFSITE_URL", raising=False)
    row = _backup()
    assert inventory.show(app_env.settings, row["id"])["offsite"] is None


def test_offsite_without_recipients_is_refused_in_one_line(offsite: Offsite, monkeypatch):
    monkeypatch.delenv("OFFSITE_AGE_RECIPIENTS")
    for args in (("offsite", "status"), ("backup",), ("offsite", "list")):
        done = run_cli(*args)
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "OFFSITE_AGE_RECIPIENTS" in lines[0], done.stderr


def test_explicitly_unencrypted_copy(offsite: Offsite, monkeypatch):
    monkeypatch.delenv("OFFSITE_AGE_RECIPIENTS")
    monkeypatch.setenv("OFFSITE_ENCRYPTION", "none")
    row = _backup()
    data = object_bytes(offsite, f"nightly/{row['file_name']}")
    assert data == (offsite.env.backup_dir / row["file_name"]).read_bytes()
