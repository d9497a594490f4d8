"""The admin API: backup details carry the copy's state, DELETE says what became of the copy,
POST .../offsite launches offsite_job (here Dagster's webserver is down, so it answers 503
after every check passed), and a bad offsite setting keeps the API from starting."""

from __future__ import annotations

import uuid

import pytest

from backup_pipeline.api import create_app
from backup_pipeline.errors import ConfigError
from backup_pipeline_tests.api.conftest import ApiServer, api_environ, unreachable_url
from backup_pipeline_tests.helpers import run_backup_job
from backup_pipeline_tests.offsite.conftest import Offsite


def test_details_push_and_delete(offsite: Offsite, api: ApiServer):
    row = run_backup_job().output_for_node("record_backup")
    with api.client() as http:
        details = http.get(f"/api/admin/backups/{row['id']}").json()
        assert details["offsite"]["state"] == "copied"
        assert details["offsite"]["key"] == f"nightly/{row['file_name']}.age"

        pushed = http.post(f"/api/admin/backups/{row['id']}/offsite")
        assert pushed.status_code == 503 and pushed.json()["error"] == "unavailable"
        missing = http.post(f"/api/admin/backups/{uuid.uuid4()}/offsite")
        assert missing.status_code == 404

        deleted = http.delete(f"/api/admin/backups/{row['id']}").json()
        assert deleted["offsite"]["removed"] is True
    assert offsite.objects() == []


def test_push_with_offsite_off_is_a_conflict(api: ApiServer, monkeypatch):
    row = run_backup_job().output_for_node("record_backup")
    with api.client() as http:
        answer = http.post(f"/api/admin/backups/{row['id']}/offsite")
    assert answer.status_code == 409 and "OFFSITE_URL" in answer.json()["message"]


def test_api_refuses_to_start_without_recipients(offsite: Offsite, monkeypatch):
    monkeypatch.delenv("OFFSITE_AGE_RECIPIENTS")
    with pytest.raises(ConfigError, match="OFFSITE_AGE_RECIPIENTS"):
        create_app(api_environ(offsite.env, unreachable_url()))
