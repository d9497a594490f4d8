"""Fixtures for scheduled backups: catalogs with schedules, a Dagster instance on PostgreSQL
that several processes can share, and workers that run backup_job as the daemon would."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from backup_pipeline.catalog.migrate import migrate
from backup_pipeline.postgres import parse_url
from backup_pipeline.scheduling import catalog
from backup_pipeline_tests.conftest import REPO


@pytest.fixture
def catalog_url(databases) -> str:
    """An empty database with the catalog migrated (no application data: fast)."""
    url = databases.create()
    migrate(url)
    return url


@pytest.fixture
def schedule(app_env) -> dict:
    """One enabled daily schedule keeping 2 backups, in app_env's catalog."""
    return catalog.create(app_env.database_url, name="nightly", frequency="daily", retention=2)


@pytest.fixture
def shared_dagster_home(databases, tmp_path: Path) -> Path:
    """A DAGSTER_HOME whose run and event storage is PostgreSQL, as in production, so that
    concurrent worker processes can share it."""
    params = parse_url(databases.create())
    # SQLAlchemy 2.1 maps postgresql:// to psycopg 3, on which dagster-postgres' NOTIFY fails.
    db = {"hostname": params.get("host", "127.0.0.1"), "port": int(params.get("port", 5432)),
          "db_name": params["dbname"], "username": params.get("user", "postgres"),
          "scheme": "postgresql+psycopg2"}
    if "password" in params:
        db["password"] = params["password"]
    home = tmp_path / "dagster_pg"
    home.mkdir()
    (home / "dagster.yaml").write_text(json.dumps(
        {"telemetry": {"enabled": False}, "storage": {"postgres": {"postgres_db": db}}}))
    with dg.DagsterInstance.from_config(str(home)):
        pass  # creates the tables once, before workers race to use them
    return home


@dataclass
class Worker:
    """A process that runs backup_job once, after `go()`; `result()` is its JSON report."""

    proc: subprocess.Popen

    def wait_ready(self) -> None:
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"worker did not start: {line!r} {self._stderr()}"

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 300) -> dict:
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, f"worker failed: {err[-3000:]}"
        return json.loads(out.strip().splitlines()[-1])

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read()[-3000:]


@pytest.fixture
def start_worker(app_env, shared_dagster_home: Path) -> Iterator:
    started: list[Worker] = []

    def start(run_config: dict, **env: str) -> Worker:
        environ = {**app_env.environ(), "DAGSTER_HOME": str(shared_dagster_home), **env}
        environ = {k: v for k, v in environ.items() if v is not None}
        proc = subprocess.Popen(
            [sys.executable, "-m", "backup_pipeline_tests.scheduling.worker",
             json.dumps(run_config)],
            cwd=REPO, env=environ, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        worker = Worker(proc)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.communicate()
