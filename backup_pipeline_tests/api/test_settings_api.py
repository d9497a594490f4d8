"""Settings endpoints over HTTP: the same rules as `settings set`; bad input changes nothing."""

from __future__ import annotations

from backup_pipeline.notifications import settings as notification_settings
from backup_pipeline_tests.api.conftest import ApiServer
from backup_pipeline_tests.api.test_backups_api import assert_error
from backup_pipeline_tests.conftest import AppEnv

SETTINGS = "/api/admin/backups/settings"
DEFAULTS = {"email_enabled": True, "email_recipients": [], "notify_on_success": False,
            "notify_on_failure": True, "notify_urls": []}


def test_get_and_put_settings(api: ApiServer, app_env: AppEnv):
    with api.client() as client:
        assert client.get(SETTINGS).json() == DEFAULTS
        changed = client.put(SETTINGS, json={"email_recipients": ["ops@example.com",
                                                                  "OPS@example.com", "b@x.org"],
                                             "notify_on_success": True})
        assert changed.status_code == 200, changed.text
        expected = {**DEFAULTS, "email_recipients": ["ops@example.com", "b@x.org"],
                    "notify_on_success": True}
        assert changed.json() == expected
        assert client.get(SETTINGS).json() == expected
        # the domain reads what the API wrote
        assert notification_settings.load(app_env.database_url).as_json() == expected
        as_text = client.put(SETTINGS, json={"email_recipients": "c@x.org, d@x.org"}).json()
        assert as_text["email_recipients"] == ["c@x.org", "d@x.org"]

        before = client.get(SETTINGS).json()
        for bad in ({}, {"email_recipients": ["not an address"]},
                    {"email_recipients": ["ok@x.org", "bad@"]}, {"email_enabled": None},
                    {"email_enabled": "perhaps"}, {"smtp_host": "x"}, [1]):
            assert_error(client.put(SETTINGS, json=bad), 422, "invalid_input")
        assert client.get(SETTINGS).json() == before


def test_notify_urls_over_http_are_redacted(api: ApiServer, app_env: AppEnv):
    url = "ntfys://ntfy.example.com/backups-tok-3e4f5a6b"
    with api.client() as client:
        changed = client.put(SETTINGS, json={"notify_urls": [url]})
        assert changed.status_code == 200, changed.text
        assert changed.json()["notify_urls"] == ["ntfys://ntfy.example.com"]
        assert client.get(SETTINGS).json()["notify_urls"] == ["ntfys://ntfy.example.com"]
        refused = client.put(SETTINGS, json={"notify_urls": "nosuch://tok-3e4f5a6b/x"})
        assert_error(refused, 422, "invalid_input")
        assert "tok-3e4f5a6b" not in refused.text
    assert notification_settings.load(app_env.database_url).notify_urls == (url,)
