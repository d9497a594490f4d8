"""The Dagster UI of the deployment, driven in headless Chromium as an admin would use it.

The code server, webserver and daemon run as in docker-compose.yml (deploy/dagster.yaml, Postgres
storage, queued runs) against the test application (`app_env`). The admin dismisses the community
dialog, sees every job, schedule and sensor of EXPECTED, launches backup_job from the launchpad
with run config, and sees the run succeed and the backup's asset materialization.
"""

import re
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from backup_pipeline.definitions import defs
from backup_pipeline.jobs import DATABASE_TAG
from backup_pipeline.ops.backup import BACKUP_ASSET
from backup_pipeline.postgres import database_name
from backup_pipeline_tests.conftest import psql
from backup_pipeline_tests.deploy.stack import (
    LOCATION,
    DagsterStack,
    dagster_pg_env,
    production_home,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
UI_TIMEOUT_MS = 30_000
RUN_TIMEOUT_S = 90

# Everything the definitions hold, as the UI shows it: jobs on /jobs; schedules and sensors on
# /automation, each running (toggle on). test_expected_names_are_the_definitions keeps this list
# and the definitions in step.
EXPECTED = [
    ("job", "backup_job"),
    ("job", "restore_job"),
    ("job", "retention_job"),
    ("job", "drill_job"),
    ("job", "offsite_job"),
    ("schedule", "hourly_backup_schedule"),
    ("schedule", "daily_backup_schedule"),
    ("schedule", "weekly_backup_schedule"),
    ("schedule", "monthly_backup_schedule"),
    ("schedule", "retention_cleanup_schedule"),
    ("schedule", "restore_drill_schedule"),
    ("sensor", "backup_success_email_sensor"),
    ("sensor", "backup_failure_email_sensor"),
    ("sensor", "restore_success_email_sensor"),
    ("sensor", "restore_failure_email_sensor"),
    ("sensor", "drill_failure_email_sensor"),
    ("sensor", "email_outbox_sensor"),
    ("sensor", "backup_freshness_sensor"),
    ("sensor", "offsite_catch_up_sensor"),
]

BACKUP_NOTE = "launched from the launchpad"
BACKUP_CONFIG = f"ops:\n  start_backup:\n    config:\n      note: {BACKUP_NOTE}\n"


def names(kind: str) -> list[str]:
    return [name for k, name in EXPECTED if k == kind]


def test_expected_names_are_the_definitions():
    repo = defs.get_repository_def()
    actual = {("job", job.name) for job in repo.get_all_jobs() if not job.name.startswith("__")}
    actual |= {("schedule", schedule.name) for schedule in repo.schedule_defs}
    actual |= {("sensor", sensor.name) for sensor in repo.sensor_defs}
    assert actual == set(EXPECTED)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install the Debian package chromium "
                    "(.ci/run installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def stack(browser: Browser, app_env, databases, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterStack]:
    """The deployment's Dagster processes, on a fresh Dagster storage database."""
    pg_env = dagster_pg_env(databases.create())
    for key, value in pg_env.items():
        monkeypatch.setenv(key, value)
    home = production_home(tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    stack = DagsterStack(tmp_path, {**app_env.environ(), **pg_env, "DAGSTER_HOME": str(home)})
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def page(browser: Browser, stack: DagsterStack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def open_ui(page: Page, url: str) -> None:
    """First visit of a fresh instance: the community dialog covers the page until skipped."""
    page.goto(url)
    page.get_by_role("button", name="Skip").click()
    expect(page.get_by_role("button", name="Skip")).to_be_hidden()


def expect_jobs_listed(page: Page, url: str, jobs: list[str]) -> None:
    page.goto(f"{url}/jobs")
    for job in jobs:
        expect(page.locator(f'a[href="/locations/{LOCATION}/jobs/{job}"]')).to_be_visible()


def expect_automations_running(page: Page, url: str, automations: list[str]) -> None:
    """Each schedule or sensor has a row on /automation with its running toggle on."""
    page.goto(f"{url}/automation")
    if not automations:
        expect(page.get_by_text("No automations", exact=True)).to_be_visible()
        return
    for name in automations:
        link = page.locator(f'a[href="/locations/{LOCATION}/schedules/{name}"], '
                            f'a[href="/locations/{LOCATION}/sensors/{name}"]')
        row = page.locator("div[data-index]").filter(has=link)
        expect(row).to_have_count(1)
        expect(row.locator("input[type=checkbox]").last).to_be_checked()


def launch_from_launchpad(page: Page, url: str, job: str, run_config_yaml: str | None) -> str:
    """Open the job's launchpad, replace the config editor's text if given, launch; the run id."""
    page.goto(f"{url}/locations/{LOCATION}/jobs/{job}/playground")
    page.wait_for_selector(".CodeMirror")
    if run_config_yaml is not None:
        page.evaluate("(text) => document.querySelector('.CodeMirror').CodeMirror.setValue(text)",
                      run_config_yaml)
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    return page.url.rsplit("/runs/", 1)[1].split("?")[0]


def wait_for_run(run_id: str) -> dg.DagsterRun:
    """The run once it has finished (queued, dequeued by the daemon, run on the code server)."""
    with dg.DagsterInstance.get() as instance:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.is_finished:
                if run.status != dg.DagsterRunStatus.SUCCESS:
                    errors = [e.message for e in instance.all_logs(run_id)
                              if e.level >= 40 or (e.dagster_event and e.dagster_event.is_failure)]
                    pytest.fail(f"run {run_id} ended {run.status.value}: {errors}")
                return run
            if time.monotonic() > deadline:
                pytest.fail(f"run {run_id} did not finish; status "
                            f"{run.status.value if run else 'unknown'}")
            time.sleep(0.5)


def expect_run_page_success(page: Page, url: str, run_id: str, step: str) -> None:
    page.goto(f"{url}/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text(step, exact=True).first).to_be_visible()


def test_admin_launches_a_backup_from_the_ui(page: Page, stack: DagsterStack, app_env):
    url = stack.url
    open_ui(page, url)
    expect_jobs_listed(page, url, names("job"))
    expect_automations_running(page, url, names("schedule") + names("sensor"))

    run_id = launch_from_launchpad(page, url, "backup_job", BACKUP_CONFIG)
    run = wait_for_run(run_id)
    assert run.tags[DATABASE_TAG] == database_name(app_env.database_url)
    expect_run_page_success(page, url, run_id, "record_backup")

    status, note, file_name = psql(
        app_env.database_url, "-At", "-F", "|", "-c",
        "select status, note, file_name from backup.backup_history "
        f"where dagster_run_id = '{run_id}'").strip().split("|")
    assert (status, note) == ("completed", BACKUP_NOTE)
    assert (app_env.backup_dir / file_name).is_file()

    page.goto(f"{url}/assets/{BACKUP_ASSET.to_user_string()}")
    expect(page.get_by_text(file_name, exact=True).first).to_be_visible()
    for key in ("archive_bytes", "database_bytes", "documents", "duration_seconds"):
        expect(page.get_by_text(key, exact=True).first).to_be_visible()

    # the restore preview: launched from the launchpad with dry_run true, shown as a table
    backup_id = psql(app_env.database_url, "-At", "-c",
                     "select id from backup.backup_history "
                     f"where dagster_run_id = '{run_id}'").strip()
    restore_config = (f"ops:\n  start_restore:\n    config:\n      backup_id: {backup_id}\n"
                      "      dry_run: true\n")
    restore_run_id = launch_from_launchpad(page, url, "restore_job", restore_config)
    restore_run = wait_for_run(restore_run_id)
    assert restore_run.status == dg.DagsterRunStatus.SUCCESS
    expect_run_page_success(page, url, restore_run_id, "preview_restore")
    page.get_by_text("[Show Markdown]").first.click()
    table = page.get_by_role("dialog").get_by_role("table").first
    expect(table).to_be_visible()
    expect(table.get_by_text("public.film", exact=False).first).to_be_visible()
