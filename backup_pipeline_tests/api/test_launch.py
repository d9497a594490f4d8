"""Backups launched over HTTP through a real Dagster webserver's GraphQL API."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backup_pipeline.api.launcher import BACKUP_ID_TAG, DagsterLauncher
from backup_pipeline.catalog import history
from backup_pipeline_tests.api.conftest import DagsterStack
from backup_pipeline_tests.api.test_backups_api import BASE, assert_error

WAIT = 300  # bound on waiting for a run on a loaded machine; nothing asserts on speed


def wait_for(probe: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = probe()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}: last {value!r}"
        time.sleep(0.5)


def wait_run_ended(stack: DagsterStack, run_id: str) -> str:
    launcher = DagsterLauncher(stack.webserver_url)
    return wait_for(lambda: launcher.run(run_id), lambda run: run.finished,
                    f"run {run_id} to end").status


def test_create_poll_download(dagster_stack: DagsterStack):
    with dagster_stack.api.client() as client:
        launched = client.post(BASE, json={"note": "over HTTP"})
        assert launched.status_code == 202, launched.text
        body = launched.json()
        backup_id, run_id = body["backup_id"], body["run_id"]
        assert body["status"] == "pending"
        assert launched.headers["location"] == body["status_url"] == f"{BASE}/{backup_id}"

        seen = []

        def probe() -> dict:
            response = client.get(f"{BASE}/{backup_id}")
            assert response.status_code == 200, response.text
            seen.append(response.json()["status"])
            return response.json()

        record = wait_for(probe, lambda r: r["status"] in ("completed", "failed"),
                          "the backup to end")
        assert record["status"] == "completed", record
        assert set(seen) <= {"pending", "in_progress", "completed"}
        assert record["dagster_run_id"] == run_id
        assert record["trigger"] == "api" and record["backup_type"] == "manual"
        assert record["note"] == "over HTTP" and record["manifest"]["backup_id"] == backup_id

        download = client.get(f"{BASE}/{backup_id}/download")
        assert download.status_code == 200
        path = dagster_stack.env.backup_dir / record["file_name"]
        assert download.content == path.read_bytes()
        assert hashlib.sha256(download.content).hexdigest() == record["sha256"]
        assert record["file_name"] in download.headers["content-disposition"]

        listed = client.get(BASE, params={"type": "manual"}).json()
        assert backup_id in [r["id"] for r in listed["items"]]
    assert wait_run_ended(dagster_stack, run_id) == "SUCCESS"


def test_second_launch_while_a_backup_runs_is_refused(dagster_stack: DagsterStack):
    """A table lock holds the first backup's pg_dump, so it is surely still running."""
    with psycopg.connect(dagster_stack.env.database_url) as holder:
        holder.execute("LOCK TABLE public.actor IN ACCESS EXCLUSIVE MODE")
        with dagster_stack.api.client() as client:
            first = client.post(BASE)
            assert first.status_code == 202, first.text
            backup_id, run_id = first.json()["backup_id"], first.json()["run_id"]

            body = assert_error(client.post(BASE, json={"note": "second"}), 409, "conflict")
            assert "a backup is already running" in body["message"] and run_id in body["message"]

            record = wait_for(lambda: client.get(f"{BASE}/{backup_id}").json(),
                              lambda r: r["status"] == "in_progress", "the backup to start")
            assert record["run_status"] == "STARTED"
            assert_error(client.get(f"{BASE}/{backup_id}/download"), 409, "conflict")
            assert_error(client.delete(f"{BASE}/{backup_id}"), 409, "conflict")
        holder.rollback()  # releases the lock
    assert wait_run_ended(dagster_stack, run_id) == "SUCCESS"
    with dagster_stack.api.client() as client:
        assert client.get(f"{BASE}/{backup_id}").json()["status"] == "completed"
        notes = [r["note"] for r in client.get(BASE, params={"page_size": 500}).json()["items"]]
        assert "second" not in notes


def readme_launch_script() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("GraphQL `launchRun`", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_curl_launch_works(dagster_stack: DagsterStack):
    """The README's raw GraphQL launch, run as written against the test webserver."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    script = readme_launch_script() \
        .replace("http://localhost:3000", dagster_stack.webserver_url) \
        .replace('"repositoryLocationName": "backup_pipeline"',
                 '"repositoryLocationName": "backup_pipeline.definitions"')
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)["data"]["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    run_id = answer["run"]["runId"]
    assert wait_run_ended(dagster_stack, run_id) == "SUCCESS"
    row = history.find_by_run(dagster_stack.env.database_url, run_id)
    assert row["status"] == "completed" and row["note"] == "before the upgrade"
    assert row["trigger"] == "api"
    launcher = DagsterLauncher(dagster_stack.webserver_url)
    assert launcher.run(run_id).tags[BACKUP_ID_TAG] == row["id"]


RESTORE_STATUS = f"{BASE}/restore/status"


def backup_over_http(client) -> dict:
    launched = client.post(BASE, json={"note": "to restore"})
    assert launched.status_code == 202, launched.text
    backup_id = launched.json()["backup_id"]
    record = wait_for(lambda: client.get(f"{BASE}/{backup_id}").json(),
                      lambda r: r["status"] in ("completed", "failed"), "the backup to end")
    assert record["status"] == "completed", record
    return record


def wait_restore(client, restore_id: str) -> dict:
    """The restore's final status. While its swap has the live database closed to new
    connections (a moment), the status answers 503 `unavailable`: asked again, as a client
    would."""
    def done(r: dict) -> bool:
        if r.get("error") == "unavailable":
            return False
        return r["state"] in ("completed", "failed")

    return wait_for(lambda: client.get(RESTORE_STATUS, params={"restore_id": restore_id}).json(),
                    done, "the restore to end")


def test_restore_preview_then_execute(dagster_stack: DagsterStack):
    url = dagster_stack.env.database_url
    with dagster_stack.api.client() as client:
        record = backup_over_http(client)
        wait_run_ended(dagster_stack, record["dagster_run_id"])
        with psycopg.connect(url) as conn:
            conn.execute("DELETE FROM public.payment WHERE payment_id % 2 = 0")
            changed = conn.execute("SELECT count(*) FROM public.payment").fetchone()[0]

        preview = client.post(f"{BASE}/{record['id']}/restore/preview")
        assert preview.status_code == 202, preview.text
        launched = preview.json()
        assert launched["dry_run"] is True and launched["backup_id"] == record["id"]
        status = wait_restore(client, launched["restore_id"])
        assert status["state"] == "completed", status
        assert status["dry_run"] is True and status["preview"]
        wait_run_ended(dagster_stack, launched["run_id"])
        with psycopg.connect(url) as conn:  # a preview changes nothing
            assert conn.execute("SELECT count(*) FROM public.payment").fetchone()[0] == changed

        execute = client.post(f"{BASE}/{record['id']}/restore", json={"scope": "database"})
        assert execute.status_code == 202, execute.text
        restore = execute.json()
        assert restore["dry_run"] is False
        body = assert_error(client.post(f"{BASE}/{record['id']}/restore"), 409, "conflict")
        assert "already running" in body["message"]
        assert_error(client.post(BASE), 409, "conflict")

        status = wait_restore(client, restore["restore_id"])
        assert status["state"] == "completed", status
        assert status["safety_backup_id"] and status["scope"] == "database"
        assert wait_run_ended(dagster_stack, restore["run_id"]) == "SUCCESS"
        latest = client.get(RESTORE_STATUS).json()
        assert latest["id"] == restore["restore_id"]
        safety = client.get(f"{BASE}/{status['safety_backup_id']}").json()
        assert safety["backup_type"] == "safety" and safety["status"] == "completed"
    with psycopg.connect(url) as conn:
        restored = conn.execute("SELECT count(*) FROM public.payment").fetchone()[0]
    assert restored > changed


def test_a_drill_launched_over_http_passes_and_touches_nothing_live(dagster_stack: DagsterStack):
    url = dagster_stack.env.database_url
    with dagster_stack.api.client() as client:
        record = backup_over_http(client)
        wait_run_ended(dagster_stack, record["dagster_run_id"])
        assert_error(client.post(f"{BASE}/00000000-0000-4000-8000-000000000000/drill"), 404,
                     "not_found")
        before = client.get(BASE).json()["total"]
        launched = client.post(f"{BASE}/{record['id']}/drill")
        assert launched.status_code == 202, launched.text
        body = launched.json()
        assert body["backup_id"] == record["id"] and body["status"] == "pending"
        assert wait_run_ended(dagster_stack, body["run_id"]) == "SUCCESS"
        status = client.get(body["status_url"])
        assert status.status_code == 200, status.text
        assert status.json() == {"run_id": body["run_id"], "backup_id": record["id"],
                                 "run_status": "SUCCESS", "passed": True}
        assert client.get(BASE).json()["total"] == before  # no safety backup, nothing made
        assert_error(client.get(f"{BASE}/drill/status", params={"run_id": "x"}), 404,
                     "not_found")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM backup.restore_databases").fetchone()[0] == 0
