"""The five Dagster schedules: crons, time zone, running by default, and each backup schedule's
tick against catalog rows."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from backup_pipeline.definitions import defs
from backup_pipeline.errors import ConfigError
from backup_pipeline.schedules import all_schedules
from backup_pipeline.scheduling import catalog
from backup_pipeline_tests.scheduling.helpers import tick

CRONS = {
    "hourly_backup_schedule": "0 * * * *",
    "daily_backup_schedule": "0 3 * * *",
    "weekly_backup_schedule": "0 3 * * 0",
    "monthly_backup_schedule": "0 3 1 * *",
    "retention_cleanup_schedule": "0 4 * * *",
    "restore_drill_schedule": "0 5 * * 0",
}


def test_the_schedules_of_the_contract():
    repo = defs.get_repository_def()
    found = {s.name: s for s in repo.schedule_defs}
    assert {name: s.cron_schedule for name, s in found.items()} == CRONS
    for s in found.values():
        assert s.execution_timezone == "UTC"
        assert s.default_status == dg.DefaultScheduleStatus.RUNNING
    assert found["retention_cleanup_schedule"].job_name == "retention_job"
    assert found["restore_drill_schedule"].job_name == "drill_job"
    assert {found[n].job_name for n in CRONS if n.endswith("_backup_schedule")} == {"backup_job"}


def test_backup_timezone(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BACKUP_TIMEZONE", "Europe/Berlin")
    assert {s.execution_timezone for s in all_schedules()} == {"Europe/Berlin"}
    monkeypatch.setenv("BACKUP_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match="BACKUP_TIMEZONE='Mars/Olympus' is not a known"):
        all_schedules()


def test_each_tick_requests_one_run_per_enabled_row_of_its_frequency(
        catalog_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", catalog_url)
    rows = {
        "hourly": [catalog.create(catalog_url, name="every hour", frequency="hourly",
                                  retention=24)],
        "daily": [catalog.create(catalog_url, name=n, frequency="daily", retention=7)
                  for n in ("nightly", "nightly offsite")],
        "weekly": [catalog.create(catalog_url, name="sundays", frequency="weekly",
                                  retention=4)],
    }
    catalog.create(catalog_url, name="paused", frequency="daily", retention=3, enabled=False)
    catalog.create(catalog_url, name="paused monthly", frequency="monthly", retention=3,
                   enabled=False)
    backup_job = defs.get_job_def("backup_job")
    when = datetime(2026, 3, 1, 4, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 03:00 UTC

    for frequency, expected in rows.items():
        result = tick(f"{frequency}_backup_schedule", when)
        requests = result.run_requests
        assert [r.tags["backup_pipeline/schedule_id"] for r in requests] == \
            [row["id"] for row in sorted(expected, key=lambda r: r["name"])]
        for request, row in zip(requests, sorted(expected, key=lambda r: r["name"]),
                                strict=True):
            assert request.run_key == f"{row['id']}@2026-03-01T03:00:00Z"
            assert request.tags["backup_pipeline/slot_time"] == "2026-03-01T03:00:00Z"
            assert request.tags["backup_pipeline/schedule_name"] == row["name"]
            config = request.run_config["ops"]["start_backup"]["config"]
            assert config == {"backup_type": "scheduled", "trigger": f"schedule:{row['name']}",
                              "schedule_id": row["id"], "slot_time": "2026-03-01T03:00:00Z"}
            dg.validate_run_config(backup_job, request.run_config)

    monthly = tick("monthly_backup_schedule", when)
    assert not monthly.run_requests
    assert "no enabled monthly backup schedules" in monthly.skip_message


def test_retention_cleanup_tick(catalog_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", catalog_url)
    result = tick("retention_cleanup_schedule", datetime(2026, 3, 1, 4, 0, tzinfo=UTC))
    [request] = result.run_requests
    dg.validate_run_config(defs.get_job_def("retention_job"), request.run_config)
