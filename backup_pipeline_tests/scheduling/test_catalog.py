"""Schedules as catalog rows, managed through `backup-pipeline schedules`: bad input gives one
clear line and writes nothing."""

import json

import psycopg
import pytest

from backup_pipeline.cli import main
from backup_pipeline.errors import ConfigError, NotFoundError
from backup_pipeline.scheduling import catalog


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def schedule_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT name, frequency, retention_count, is_enabled, updated_at"
            " FROM backup.backup_schedules ORDER BY name").fetchall()


@pytest.fixture
def cli_env(catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", catalog_url)
    return catalog_url


def test_create_list_update_toggle_delete(cli_env: str, capsys):
    code, out, _ = cli(capsys, "schedules", "create", "--name", "nightly", "--frequency",
                       "daily", "--retention", "7", "--json")
    assert code == 0
    created = json.loads(out)
    assert (created["name"], created["frequency"], created["retention_count"],
            created["is_enabled"], created["cron"]) == ("nightly", "daily", 7, True, "0 3 * * *")

    code, out, _ = cli(capsys, "schedules", "create", "--name", "hourly ones", "--frequency",
                       "hourly", "--retention", "24", "--disabled", "--json")
    assert code == 0 and json.loads(out)["is_enabled"] is False

    code, out, _ = cli(capsys, "schedules", "update", created["id"], "--retention", "3",
                       "--frequency", "WEEKLY", "--json")
    updated = json.loads(out)
    assert (updated["retention_count"], updated["frequency"], updated["name"]) == \
        (3, "weekly", "nightly")

    code, out, _ = cli(capsys, "schedules", "toggle", created["id"], "--json")
    assert json.loads(out)["is_enabled"] is False
    code, out, _ = cli(capsys, "schedules", "update", created["id"], "--enabled", "--json")
    assert json.loads(out)["is_enabled"] is True

    code, out, _ = cli(capsys, "schedules", "list", "--json")
    listed = json.loads(out)
    assert listed["total"] == 2
    assert [r["name"] for r in listed["items"]] == ["hourly ones", "nightly"]
    assert listed["items"][1]["completed_backups"] == 0

    code, out, _ = cli(capsys, "schedules", "delete", created["id"], "--json")
    assert code == 0 and json.loads(out)["deleted"] == created["id"]
    assert [r[0] for r in schedule_rows(cli_env)] == ["hourly ones"]


@pytest.mark.parametrize("args, message", [
    (["--frequency", "yearly", "--retention", "3"],
     "unknown frequency 'yearly'; expected one of hourly, daily, weekly, monthly"),
    (["--frequency", "daily", "--retention", "0"], "retention must be at least 1"),
    (["--frequency", "daily", "--retention", "-2"], "retention must be at least 1"),
    (["--frequency", "daily", "--retention", "many"], "retention must be a whole number"),
])
def test_create_rejects_bad_values(cli_env: str, capsys, args: list[str], message: str):
    code, out, err = cli(capsys, "schedules", "create", "--name", "x", *args)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert schedule_rows(cli_env) == []


def test_duplicate_name_is_one_line_and_writes_nothing(cli_env: str, capsys):
    assert cli(capsys, "schedules", "create", "--name", "nightly", "--frequency", "daily",
               "--retention", "7")[0] == 0
    other = catalog.create(cli_env, name="weekly", frequency="weekly", retention=4)
    before = schedule_rows(cli_env)

    code, _, err = cli(capsys, "schedules", "create", "--name", "nightly", "--frequency",
                       "hourly", "--retention", "2")
    assert code == 1
    assert err == "backup-pipeline: error: a schedule named 'nightly' already exists\n"

    code, _, err = cli(capsys, "schedules", "update", other["id"], "--name", "nightly",
                       "--retention", "9")
    assert code == 1 and "a schedule named 'nightly' already exists" in err
    code, _, err = cli(capsys, "schedules", "update", other["id"], "--retention", "0")
    assert code == 1 and "retention must be at least 1" in err
    assert schedule_rows(cli_env) == before


def test_unknown_ids_and_empty_updates(cli_env: str, capsys):
    code, _, err = cli(capsys, "schedules", "toggle", "not-a-uuid")
    assert code == 1 and "no schedule with id 'not-a-uuid'" in err
    code, _, err = cli(capsys, "schedules", "delete", "00000000-0000-0000-0000-000000000000")
    assert code == 1 and "no schedule with id" in err
    row = catalog.create(cli_env, name="n", frequency="monthly", retention=1)
    with pytest.raises(ConfigError, match="nothing to update"):
        catalog.update(cli_env, row["id"])
    with pytest.raises(NotFoundError):
        catalog.update(cli_env, "00000000-0000-0000-0000-000000000000", retention=2)


def test_names_are_normalised_and_bounded(catalog_url: str):
    row = catalog.create(catalog_url, name="  two   words ", frequency="hourly", retention=1)
    assert row["name"] == "two words"
    with pytest.raises(ConfigError, match="must not be empty"):
        catalog.create(catalog_url, name="   ", frequency="hourly", retention=1)
    with pytest.raises(ConfigError, match="at most 100"):
        catalog.create(catalog_url, name="x" * 101, frequency="hourly", retention=1)


def test_enabled_for_reads_only_enabled_rows_of_that_frequency(catalog_url: str):
    a = catalog.create(catalog_url, name="a", frequency="daily", retention=1)
    catalog.create(catalog_url, name="b", frequency="daily", retention=1, enabled=False)
    catalog.create(catalog_url, name="c", frequency="hourly", retention=1)
    assert [r["id"] for r in catalog.enabled_for(catalog_url, "daily")] == [a["id"]]
    assert catalog.enabled_for(catalog_url, "monthly") == []
