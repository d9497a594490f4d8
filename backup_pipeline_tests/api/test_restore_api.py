"""Restore endpoints without a webserver: what is answered before anything is launched."""

from __future__ import annotations

import uuid

from backup_pipeline.catalog import liveness
from backup_pipeline.restore import runs
from backup_pipeline_tests.api.conftest import ApiServer
from backup_pipeline_tests.api.test_backups_api import (
    BASE,
    assert_error,
    unfinished_failed_fileless,
)
from backup_pipeline_tests.conftest import AppEnv

STATUS = f"{BASE}/restore/status"


def test_restore_requests_answered_at_once(api: ApiServer, app_env: AppEnv):
    url = app_env.database_url
    # `done` is completed; that its file is missing matters only inside the run
    running, failed, done = unfinished_failed_fileless(url)
    with api.client() as client:
        assert client.get(STATUS).json()["state"] is None  # no restore yet
        for action in ("restore/preview", "restore"):
            for unknown in (str(uuid.uuid4()), "x"):
                assert_error(client.post(f"{BASE}/{unknown}/{action}"), 404, "not_found")
            assert_error(client.post(f"{BASE}/{running}/{action}"), 409, "conflict")
            assert_error(client.post(f"{BASE}/{failed}/{action}"), 404, "not_found")
            assert_error(client.post(f"{BASE}/{done}/{action}", json={"scope": "all"}),
                         422, "invalid_input")
            # Dagster's webserver is down here
            assert_error(client.post(f"{BASE}/{done}/{action}"), 503, "unavailable")

        # a restore recorded in the catalog, its process alive (holding its lock): status
        # shows it, and new restores wait for it
        restore_id = str(uuid.uuid4())
        liveness.hold(url, restore_id, kind="restore")
        row = runs.create(url, backup_id=done, dry_run=False, scope="both", trigger="test",
                          run_id=None, restore_id=restore_id)
        status = client.get(STATUS).json()
        assert status["id"] == row["id"] and status["state"] == "running"
        assert client.get(STATUS, params={"restore_id": row["id"]}).json()["id"] == row["id"]
        body = assert_error(client.post(f"{BASE}/{done}/restore"), 409, "conflict")
        assert row["id"] in body["message"]
        assert_error(client.post(BASE), 409, "conflict")
        for unknown in (str(uuid.uuid4()), "nope"):
            assert_error(client.get(STATUS, params={"restore_id": unknown}), 404, "not_found")
        liveness.release(restore_id, kind="restore")
