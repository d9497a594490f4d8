"""`settings get` / `settings set`: defaults, validation, all-or-nothing updates."""

import json

import psycopg
import pytest
from psycopg.types.json import Jsonb

from backup_pipeline.cli import main
from backup_pipeline.errors import ConfigError
from backup_pipeline.notifications import settings as notification_settings

DEFAULTS = {"email_enabled": True, "email_recipients": [], "notify_on_success": False,
            "notify_on_failure": True, "notify_urls": []}


@pytest.fixture
def cli(catalog_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", catalog_url)

    def run(*args: str) -> tuple[int, dict | None, str]:
        code = main([*args])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if "--json" in args and code == 0 else None), err

    return run


def stored(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT key, value FROM backup.backup_settings").fetchall())


def test_defaults_then_set_and_get(cli, catalog_url):
    assert cli("settings", "get", "--json")[1] == DEFAULTS

    code, data, _ = cli("settings", "set", "--json", "email_recipients=ops@example.com, "
                        "Oncall@Example.org,ops@example.com", "notify_on_success=yes")
    assert code == 0
    expected = {**DEFAULTS, "email_recipients": ["ops@example.com", "Oncall@Example.org"],
                "notify_on_success": True}
    assert data == expected
    assert cli("settings", "get", "--json")[1] == expected
    assert stored(catalog_url)["email_recipients"] == ["ops@example.com", "Oncall@Example.org"]

    assert cli("settings", "set", "email_enabled=false", "email_recipients=")[0] == 0
    assert cli("settings", "get", "--json")[1] == {**expected, "email_enabled": False,
                                                    "email_recipients": []}


@pytest.mark.parametrize(("args", "error"), [
    (["email_recipients=ops@example.com,bob@"],
     "invalid setting email_recipients: 'bob@' is not a valid email address"),
    (["email_recipients=ops@example.com;admin@example.com"],
     "is not a valid email address"),
    (["email_recipients=Ops <ops@example.com>"], "is not a valid email address"),
    (["email_recipients=a@b..com"], "is not a valid email address"),
    (["notify_on_success=true", "email_enabled=maybe"],
     "invalid setting email_enabled: expected true or false, not 'maybe'"),
    (["notify_on_success=true", "colour=blue"], "unknown setting 'colour'; known settings:"),
    (["email_enabled"], "expected KEY=VALUE, got 'email_enabled'"),
    (["email_enabled=true", "email_enabled=false"], "email_enabled is given twice"),
])
def test_bad_settings_are_rejected_and_nothing_changes(cli, catalog_url, args, error):
    cli("settings", "set", "email_recipients=ops@example.com")
    before = stored(catalog_url)
    code, _, err = cli("settings", "set", *args)
    assert code == 1
    assert err.startswith("backup-pipeline: error: ") and error in err
    assert err.count("\n") == 1  # one line, no traceback
    assert stored(catalog_url) == before


def test_invalid_stored_settings_are_reported_not_guessed(catalog_url):
    with psycopg.connect(catalog_url) as conn:
        conn.execute("INSERT INTO backup.backup_settings (key, value) VALUES"
                     " ('email_recipients', %s)", (Jsonb(["not-an-address"]),))
    with pytest.raises(ConfigError, match="stored notification settings are invalid"):
        notification_settings.load(catalog_url)
    # and they can be repaired with set
    repaired = notification_settings.update(catalog_url, {"email_recipients": "a@example.com"})
    assert repaired.email_recipients == ("a@example.com",)


def test_other_keys_in_the_settings_table_are_left_alone(catalog_url):
    with psycopg.connect(catalog_url) as conn:
        conn.execute("INSERT INTO backup.backup_settings (key, value) VALUES"
                     " ('retention_default', '7')")
    notification_settings.update(catalog_url, {"notify_on_failure": "false"})
    assert stored(catalog_url) == {"retention_default": 7, "notify_on_failure": False}
    assert notification_settings.load(catalog_url).notify_on_failure is False


SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
WEBHOOK = "jsons://hooks.example.com/v1/alert/tok-8a7f6e5d?secret=pw-93b1"


def test_notify_urls_are_stored_whole_and_shown_redacted(cli, catalog_url, capsys):
    code, data, _ = cli("settings", "set", "--json", f"notify_urls={SLACK},\n{WEBHOOK},{SLACK}")
    assert code == 0
    assert data["notify_urls"] == ["slack://***", "jsons://hooks.example.com"]
    assert stored(catalog_url)["notify_urls"] == [SLACK, WEBHOOK]
    assert cli("settings", "get", "--json")[1]["notify_urls"] == data["notify_urls"]
    assert main(["settings", "get"]) == 0
    text = capsys.readouterr().out
    assert "slack://***, jsons://hooks.example.com" in text
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in text and "tok-8a7f6e5d" not in text
    assert cli("settings", "set", "notify_urls=")[0] == 0
    assert stored(catalog_url)["notify_urls"] == []


@pytest.mark.parametrize("url", ["nosuchscheme://tok-55aa66bb77/x", "tgram://tok-55aa66bb77",
                                 "json://host/tok-55aa66bb77 with space"])
def test_a_bad_notify_url_is_refused_without_showing_its_token(cli, catalog_url, url):
    before = stored(catalog_url)
    code, _, err = cli("settings", "set", f"notify_urls={url}")
    assert code == 1 and "invalid setting notify_urls: notification URL" in err
    assert "tok-55aa66bb77" not in err
    assert stored(catalog_url) == before
