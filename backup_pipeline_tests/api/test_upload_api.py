"""Upload over HTTP: a valid archive is listed; corrupt and oversized ones leave nothing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_pipeline.api import create_app
from backup_pipeline.backup import inventory
from backup_pipeline_tests.api.conftest import (
    ApiServer,
    ThreadedServer,
    api_environ,
    unreachable_url,
)
from backup_pipeline_tests.api.test_backups_api import BASE, assert_error
from backup_pipeline_tests.conftest import AppEnv
from backup_pipeline_tests.helpers import leftovers, run_backup_job

UPLOAD = f"{BASE}/upload"
SLACK = 4096  # the limit is the archive's size plus this


@pytest.fixture
def archive(app_env: AppEnv, tmp_path: Path) -> Path:
    """An archive made "elsewhere": backed up here, copied out, then deleted from the catalog."""
    record = run_backup_job().output_for_node("record_backup")
    copy = tmp_path / "from-the-old-server.tar.gz"
    shutil.copy(app_env.backup_dir / record["file_name"], copy)
    inventory.delete(app_env.settings, record["id"])
    assert leftovers(app_env.backup_dir) == []
    return copy


@pytest.fixture
def upload_api(app_env: AppEnv, archive: Path) -> Iterator[ApiServer]:
    environ = api_environ(app_env, unreachable_url(),
                          API_UPLOAD_MAX_BYTES=str(archive.stat().st_size + SLACK))
    served = ThreadedServer.start(create_app(environ))
    yield ApiServer(served.url, environ)
    served.stop()


def listed(client) -> list[dict]:
    return client.get(BASE, params={"page_size": 500}).json()["items"]


def test_upload_valid_then_corrupt_then_oversized(upload_api: ApiServer, app_env: AppEnv,
                                                  archive: Path):
    data = archive.read_bytes()
    with upload_api.client() as client:
        with archive.open("rb") as f:
            response = client.post(UPLOAD, files={"file": (archive.name, f, "application/gzip")},
                                   data={"note": "from the old server"})
        assert response.status_code == 201, response.text
        record = response.json()
        assert record["backup_type"] == "uploaded" and record["status"] == "completed"
        assert record["note"] == "from the old server" and record["trigger"] == "upload"
        assert (app_env.backup_dir / record["file_name"]).read_bytes() == data
        assert client.get(f"{BASE}/{record['id']}/download").content == data

        corrupt = bytearray(data)
        corrupt[len(corrupt) // 2] ^= 0xFF
        body = assert_error(client.post(UPLOAD, content=bytes(corrupt),
                                        headers={"content-type": "application/gzip"}),
                            422, "invalid_archive")
        assert str(app_env.backup_dir) not in body["message"]

        oversized = data + b"\0" * (2 * SLACK)
        assert_error(client.post(UPLOAD, files={"file": ("big.tar.gz", oversized)}),
                     413, "too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds mid-stream
            for start in range(0, len(oversized), 65536):
                yield oversized[start:start + 65536]

        assert_error(client.post(UPLOAD, content=chunks(),
                                 headers={"content-type": "application/gzip"}),
                     413, "too_large")

        # the same archive again is refused: it is already listed
        body = assert_error(client.post(UPLOAD, content=data,
                                        headers={"content-type": "application/gzip"}),
                            422, "refused")
        assert "already in the catalog" in body["message"]

        assert [r["id"] for r in listed(client)] == [record["id"]]
    assert leftovers(app_env.backup_dir) == [record["file_name"]]


def test_upload_refuses_what_is_not_an_upload(upload_api: ApiServer, app_env: AppEnv):
    with upload_api.client() as client:
        for kwargs in (
            {"json": {"file": "x"}},
            {"content": b"x", "headers": {"content-type": "text/plain"}},
            {"files": {"other": ("a.tar.gz", b"x")}},
            {"files": {"file": ("a.tar.gz", b"x"), "extra": ("b", b"y")}},
            {"content": b"--nope\r\n", "headers": {
                "content-type": "multipart/form-data; boundary=zzz"}},
            {"content": b"", "headers": {"content-type": "application/gzip"}},
        ):
            response = client.post(UPLOAD, **kwargs)
            assert response.status_code == 422, (kwargs, response.text)
        assert listed(client) == []
    assert leftovers(app_env.backup_dir) == []
