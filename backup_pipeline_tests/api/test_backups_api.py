"""Backup endpoints over HTTP without launches: list, details, download, delete, errors."""

from __future__ import annotations

import hashlib
import uuid

from backup_pipeline.api.backups import content_disposition
from backup_pipeline.api.errors import scrub_paths
from backup_pipeline.catalog import history
from backup_pipeline.restore import runs
from backup_pipeline_tests.api.conftest import ApiServer
from backup_pipeline_tests.conftest import AppEnv
from backup_pipeline_tests.helpers import run_backup_job

BASE = "/api/admin/backups"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["message"]
    return body


def make_rows(app_env: AppEnv) -> list[str]:
    """Seven catalog rows of mixed types and states, without running anything."""
    url = app_env.database_url
    ids = []
    for backup_type in ("manual", "scheduled", "safety", "uploaded", "manual", "safety",
                        "scheduled"):
        row = history.create(url, backup_type=backup_type, trigger="test")
        if backup_type == "safety":
            history.fail(url, row["id"], "boom")
        else:
            history.complete(url, row["id"], file_name=f"{row['id']}.tar.gz", size_bytes=1)
        ids.append(row["id"])
    return ids


def test_list_pages_in_a_stable_order(api: ApiServer, app_env: AppEnv):
    make_rows(app_env)
    with api.client() as client:
        everything = client.get(BASE, params={"page_size": 500}).json()
        assert everything["total"] == 7 and len(everything["items"]) == 7
        newest_first = [r["id"] for r in everything["items"]]
        started = [r["started_at"] for r in everything["items"]]
        assert started == sorted(started, reverse=True)

        pages = [client.get(BASE, params={"page": n, "page_size": 3}).json() for n in (1, 2, 3)]
        assert [len(p["items"]) for p in pages] == [3, 3, 1]
        assert {p["total"] for p in pages} == {7}
        assert [p["page"] for p in pages] == [1, 2, 3] and {p["page_size"] for p in pages} == {3}
        assert [r["id"] for p in pages for r in p["items"]] == newest_first
        # asking again gives the same pages
        again = client.get(BASE, params={"page": 2, "page_size": 3}).json()
        assert again == pages[1]

        beyond = client.get(BASE, params={"page": 4, "page_size": 3})
        assert beyond.status_code == 200
        assert beyond.json() == {"items": [], "total": 7, "page": 4, "page_size": 3}

        default = client.get(BASE).json()
        assert default["page"] == 1 and default["page_size"] == 20 and default["total"] == 7

        safety = client.get(BASE, params={"type": "safety"}).json()
        assert safety["total"] == 2 and {r["status"] for r in safety["items"]} == {"failed"}
        done = client.get(BASE, params={"status": "completed", "type": "scheduled"}).json()
        assert done["total"] == 2
        assert client.get(BASE, params={"status": "in_progress"}).json()["total"] == 0

        for bad in ({"page": 0}, {"page": "x"}, {"page_size": 0}, {"page_size": 501},
                    {"type": "weekly"}, {"status": "done"}):
            body = assert_error(client.get(BASE, params=bad), 422, "invalid_input")
            assert next(iter(bad)) in body["message"]


def test_details_download_delete(api: ApiServer, app_env: AppEnv):
    record = run_backup_job(note="for the API").output_for_node("record_backup")
    path = app_env.backup_dir / record["file_name"]
    with api.client() as client:
        details = client.get(f"{BASE}/{record['id']}")
        assert details.status_code == 200
        shown = details.json()
        assert shown["id"] == record["id"] and shown["status"] == "completed"
        assert shown["note"] == "for the API" and shown["file_exists"]
        assert shown["manifest"]["backup_id"] == record["id"]
        assert shown["run_status"] is None  # ended backups need no run lookup

        with client.stream("GET", f"{BASE}/{record['id']}/download") as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/gzip"
            assert response.headers["content-disposition"] == \
                f'attachment; filename="{record["file_name"]}"'
            assert int(response.headers["content-length"]) == path.stat().st_size
            data = b"".join(response.iter_bytes())
        assert data == path.read_bytes()
        assert response.headers["x-backup-sha256"] == hashlib.sha256(data).hexdigest()

        restore = runs.create(app_env.database_url, backup_id=record["id"], dry_run=True,
                              scope="both", trigger="test", run_id=None)
        assert_error(client.delete(f"{BASE}/{record['id']}"), 409, "conflict")
        assert path.exists()
        runs.update(app_env.database_url, restore["id"], state="completed", step="done")

        deleted = client.delete(f"{BASE}/{record['id']}")
        assert deleted.status_code == 200
        assert deleted.json() == {"deleted": record["id"], "file_name": record["file_name"],
                                  "file_removed": True, "offsite": None}
        assert not path.exists()
        assert_error(client.get(f"{BASE}/{record['id']}"), 404, "not_found")
        assert_error(client.delete(f"{BASE}/{record['id']}"), 404, "not_found")
        assert_error(client.get(f"{BASE}/{record['id']}/download"), 404, "not_found")


def unfinished_failed_fileless(url: str) -> tuple[str, str, str]:
    """Ids of a backup still running, a failed one, and a completed one whose file is gone."""
    running = history.create(url, backup_type="manual", trigger="test")["id"]
    failed = history.create(url, backup_type="manual", trigger="test")["id"]
    history.fail(url, failed, "pg_dump failed")
    lost = history.create(url, backup_type="manual", trigger="test")["id"]
    history.complete(url, lost, file_name="motovaultpro_backup_20200101_000000.tar.gz")
    return running, failed, lost


def test_unknown_unfinished_and_fileless_backups(api: ApiServer, app_env: AppEnv):
    running, failed, lost = unfinished_failed_fileless(app_env.database_url)
    with api.client() as client:
        for unknown in (str(uuid.uuid4()), "not-a-uuid", "1"):
            body = assert_error(client.get(f"{BASE}/{unknown}"), 404, "not_found")
            assert unknown in body["message"]
            assert_error(client.get(f"{BASE}/{unknown}/download"), 404, "not_found")
            assert_error(client.delete(f"{BASE}/{unknown}"), 404, "not_found")

        body = assert_error(client.get(f"{BASE}/{running}/download"), 409, "conflict")
        assert "in_progress" in body["message"]
        assert_error(client.delete(f"{BASE}/{running}"), 409, "conflict")
        shown = client.get(f"{BASE}/{running}").json()
        assert shown["status"] == "in_progress"

        body = assert_error(client.get(f"{BASE}/{failed}/download"), 404, "not_found")
        assert "no archive" in body["message"]
        body = assert_error(client.get(f"{BASE}/{lost}/download"), 404, "not_found")
        assert "missing on disk" in body["message"]
        assert client.delete(f"{BASE}/{lost}").json()["file_removed"] is False

        assert_error(client.get("/api/admin/nothing"), 404, "not_found")
        assert_error(client.put(BASE), 405, "method_not_allowed")


def test_create_backup_when_dagster_is_down(api: ApiServer, app_env: AppEnv):
    with api.client() as client:
        body = assert_error(client.post(BASE, json={"note": "x"}), 503, "unavailable")
        assert "Dagster's webserver" in body["message"]
        assert_error(client.post(BASE), 503, "unavailable")  # the body is optional
        assert client.get(BASE).json()["total"] == 0


def test_create_backup_validates_its_body(api: ApiServer):
    with api.client() as client:
        for bad in ({"note": "x", "extra": 1}, {"note": "x" * 1001}, {"note": 5},
                    {"note": "a\x00b"}, [1, 2]):
            assert_error(client.post(BASE, json=bad), 422, "invalid_input")
        body = assert_error(client.post(BASE, content=b"{not json",
                                        headers={"content-type": "application/json"}),
                            422, "invalid_input")
        assert body["details"]


def test_no_answer_carries_a_filesystem_path(api: ApiServer, app_env: AppEnv):
    """The backup directory cannot be created: the error names the problem, not the path."""
    blocker = app_env.backup_dir
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the backup directory should be")
    record = history.create(app_env.database_url, backup_type="manual", trigger="test")
    history.complete(app_env.database_url, record["id"], file_name="x.tar.gz")
    with api.client() as client:
        answers = [client.get(f"{BASE}/{record['id']}/download"),
                   client.delete(f"{BASE}/{record['id']}"),
                   client.get(f"{BASE}/{uuid.uuid4()}"), client.post(BASE)]
    for answer in answers:
        assert str(app_env.backup_dir.parent) not in answer.text, answer.text
        assert "/tmp" not in answer.text, answer.text


def test_scrub_paths():
    assert scrub_paths("cannot create backup directory /srv/data/backups: Permission denied") \
        == "cannot create backup directory backups: Permission denied"
    assert scrub_paths("archive '/a/b/c.tar.gz' is truncated") == "archive 'c.tar.gz' is truncated"
    kept = "Dagster's webserver at http://127.0.0.1:3000/graphql does not answer"
    assert scrub_paths(kept) == kept
    assert scrub_paths("see /api/admin/backups/x") == "see x"  # any absolute path goes


def test_content_disposition():
    assert content_disposition("motovaultpro_backup_20240101_030000.tar.gz") == \
        'attachment; filename="motovaultpro_backup_20240101_030000.tar.gz"'
    assert content_disposition('b\u00e4d"name.tar.gz') == (
        "attachment; filename=\"b_d_name.tar.gz\"; filename*=UTF-8''b%C3%A4d%22name.tar.gz")
