"""Schedule endpoints over HTTP: the same rules as the CLI, bad input changes nothing."""

from __future__ import annotations

import uuid

from backup_pipeline.scheduling import catalog
from backup_pipeline_tests.api.conftest import ApiServer
from backup_pipeline_tests.api.test_backups_api import assert_error
from backup_pipeline_tests.conftest import AppEnv

SCHEDULES = "/api/admin/backups/schedules"


def test_schedule_lifecycle(api: ApiServer, app_env: AppEnv):
    with api.client() as client:
        assert client.get(SCHEDULES).json() == {"items": [], "total": 0}
        created = client.post(SCHEDULES, json={"name": "nightly", "frequency": "daily",
                                               "retention_count": 7})
        assert created.status_code == 201, created.text
        nightly = created.json()
        assert nightly["cron"] == "0 3 * * *" and nightly["is_enabled"] is True
        assert nightly["retention_count"] == 7
        hourly = client.post(SCHEDULES, json={"name": "hourly", "frequency": "hourly",
                                              "retention_count": 24, "is_enabled": False}).json()
        assert hourly["is_enabled"] is False

        listed = client.get(SCHEDULES).json()
        assert listed["total"] == 2
        assert [s["name"] for s in listed["items"]] == ["hourly", "nightly"]
        assert {s["completed_backups"] for s in listed["items"]} == {0}
        # the domain sees what the API wrote
        assert [r["id"] for r in catalog.enabled_for(app_env.database_url, "daily")] == \
            [nightly["id"]]

        updated = client.put(f"{SCHEDULES}/{nightly['id']}",
                             json={"frequency": "weekly", "retention_count": 4})
        assert updated.status_code == 200
        assert updated.json()["cron"] == "0 3 * * 0" and updated.json()["retention_count"] == 4
        assert updated.json()["name"] == "nightly"

        toggled = client.patch(f"{SCHEDULES}/{nightly['id']}/toggle")
        assert toggled.status_code == 200 and toggled.json()["is_enabled"] is False
        assert client.patch(f"{SCHEDULES}/{nightly['id']}/toggle").json()["is_enabled"] is True
        for _ in range(2):  # an explicit state is idempotent
            response = client.patch(f"{SCHEDULES}/{hourly['id']}/toggle",
                                    json={"is_enabled": True})
            assert response.json()["is_enabled"] is True

        deleted = client.delete(f"{SCHEDULES}/{hourly['id']}")
        assert deleted.status_code == 200
        assert deleted.json() == {"deleted": hourly["id"], "name": "hourly", "backups_kept": 0}
        assert client.get(SCHEDULES).json()["total"] == 1


def test_bad_schedules_change_nothing(api: ApiServer, app_env: AppEnv):
    with api.client() as client:
        nightly = client.post(SCHEDULES, json={"name": "nightly", "frequency": "daily",
                                               "retention_count": 7}).json()
        before = client.get(SCHEDULES).json()
        bad_creates = [
            {"name": "x", "frequency": "yearly", "retention_count": 1},
            {"name": "x", "frequency": "daily", "retention_count": 0},
            {"name": "x", "frequency": "daily", "retention_count": "many"},
            {"name": "   ", "frequency": "daily", "retention_count": 1},
            {"name": "x" * 101, "frequency": "daily", "retention_count": 1},
            {"name": "a\x00b", "frequency": "daily", "retention_count": 1},
            {"name": "x", "frequency": "daily"},
            {"name": "x", "frequency": "daily", "retention_count": 1, "color": "red"},
        ]
        for body in bad_creates:
            assert_error(client.post(SCHEDULES, json=body), 422, "invalid_input")
        duplicate = assert_error(
            client.post(SCHEDULES, json={"name": "nightly", "frequency": "hourly",
                                         "retention_count": 1}), 422, "invalid_input")
        assert "already exists" in duplicate["message"]

        target = f"{SCHEDULES}/{nightly['id']}"
        for body in ({}, {"name": None}, {"frequency": "yearly"}, {"retention_count": -1},
                     {"name": ""}, {"enabled": True}):
            assert_error(client.put(target, json=body), 422, "invalid_input")
        assert_error(client.patch(f"{target}/toggle", json={"is_enabled": "perhaps"}),
                     422, "invalid_input")
        assert client.get(SCHEDULES).json() == before

        for unknown in (str(uuid.uuid4()), "nope"):
            assert_error(client.put(f"{SCHEDULES}/{unknown}", json={"name": "y"}),
                         404, "not_found")
            assert_error(client.delete(f"{SCHEDULES}/{unknown}"), 404, "not_found")
            assert_error(client.patch(f"{SCHEDULES}/{unknown}/toggle"), 404, "not_found")
        assert client.get(SCHEDULES).json() == before
