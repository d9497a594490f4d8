"""A real S3-compatible server for the offsite tests: moto's standalone server (`moto_server`)
as a subprocess on a free loopback port, which boto3 talks to like to AWS. A test can stop and
start its own server to play the storage going down. Keys come from the real `age-keygen`."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest

from backup_pipeline.offsite import config as offsite_config
from backup_pipeline.offsite import storage
from backup_pipeline_tests.api.conftest import api, free_port  # noqa: F401 - api: a fixture here too
from backup_pipeline_tests.conftest import AppEnv

MOTO_SERVER = str(Path(sys.executable).parent / "moto_server")
STARTUP_TIMEOUT = 120  # a bound for a loaded machine, not an assertion
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret",
               "AWS_REGION": "us-east-1"}


class MotoServer:
    """moto_server on 127.0.0.1:port; stop() and start() again on the same port."""

    def __init__(self, log: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> MotoServer:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(self.port)], stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/moto-api/", timeout=2)
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not answer") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def client(self):
        return boto3.session.Session().client(
            "s3", endpoint_url=self.url, region_name=CREDENTIALS["AWS_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture(scope="session")
def moto(tmp_path_factory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@dataclass
class AgeKey:
    identity_file: Path
    recipient: str


def age_key(path: Path) -> AgeKey:
    done = subprocess.run(["age-keygen", "-o", str(path)], capture_output=True, text=True,
                          check=True)
    recipient = done.stderr.strip().rpartition(" ")[2]
    assert recipient.startswith("age1")
    return AgeKey(path, recipient)


def bucket_name() -> str:
    return f"bp-test-{secrets.token_hex(6)}"


@dataclass
class Offsite:
    env: AppEnv
    server: MotoServer
    bucket: str
    prefix: str
    key: AgeKey

    @property
    def client(self):
        return self.server.client()

    @property
    def config(self) -> offsite_config.OffsiteConfig:
        return offsite_config.required()

    def objects(self) -> list[dict]:
        return self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])

    def environ(self) -> dict[str, str]:
        return {**os.environ}


def use_offsite(monkeypatch: pytest.MonkeyPatch, env: AppEnv, server: MotoServer, tmp: Path,
                *, lock: bool = False, lock_days: str | None = None) -> Offsite:
    """Point the process environment at a new bucket on `server`, with a new age key."""
    bucket, prefix = bucket_name(), "nightly"
    args = {"ObjectLockEnabledForBucket": True} if lock else {}
    server.client().create_bucket(Bucket=bucket, **args)
    key = age_key(tmp / "age-identity.txt")
    values = {**CREDENTIALS, "S3_ENDPOINT_URL": server.url,
              "OFFSITE_URL": f"s3://{bucket}/{prefix}", "OFFSITE_AGE_RECIPIENTS": key.recipient,
              "AGE_IDENTITY_FILE": str(key.identity_file)}
    if lock_days:
        values["OFFSITE_OBJECT_LOCK_DAYS"] = lock_days
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OFFSITE_ENCRYPTION", raising=False)
    return Offsite(env, server, bucket, prefix, key)


@pytest.fixture
def offsite(app_env: AppEnv, moto: MotoServer, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Offsite:
    return use_offsite(monkeypatch, app_env, moto, tmp_path)


def object_bytes(offsite: Offsite, key: str) -> bytes:
    return offsite.client.get_object(Bucket=offsite.bucket, Key=key)["Body"].read()


def make_client(offsite: Offsite):
    return storage.make_client(offsite.config)
