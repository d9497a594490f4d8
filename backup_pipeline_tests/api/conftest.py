"""Admin API harness: the app served over real HTTP, a real Dagster webserver for launches."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from backup_pipeline.api import create_app
from backup_pipeline.catalog.migrate import migrate
from backup_pipeline_tests.conftest import AppEnv, make_dagster_home, make_documents
from backup_pipeline_tests.helpers import CLI

TOKEN = "test-admin-token-" + secrets.token_hex(16)
STARTUP_TIMEOUT = 180  # a generous bound for a loaded 2-core machine, not an assertion


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_url() -> str:
    """A URL where nothing listens: Dagster's webserver is down."""
    return f"http://127.0.0.1:{free_port()}"


def api_environ(env: AppEnv, dagster_url: str, **extra: str) -> dict[str, str]:
    return {**env.environ(), "ADMIN_API_TOKEN": TOKEN, "DAGSTER_WEBSERVER_URL": dagster_url,
            **extra}


@dataclass
class ApiServer:
    url: str
    environ: dict[str, str]

    def client(self, token: str | None = TOKEN, headers: dict[str, str] | None = None
               ) -> httpx.Client:
        auth = {"Authorization": f"Bearer {token}".strip()} if token is not None else {}
        return httpx.Client(base_url=self.url, headers={**auth, **(headers or {})}, timeout=60)


@dataclass
class ThreadedServer:
    """uvicorn serving an app on a free port in a thread of the test process."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    @classmethod
    def start(cls, app) -> ThreadedServer:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return cls(server, thread, f"http://127.0.0.1:{port}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def api(app_env: AppEnv) -> Iterator[ApiServer]:
    """The API over HTTP on this test's app_env; Dagster's webserver is down (nothing launches)."""
    environ = api_environ(app_env, unreachable_url(), API_UPLOAD_MAX_BYTES=str(2 * 1024**2))
    served = ThreadedServer.start(create_app(environ))
    yield ApiServer(served.url, environ)
    served.stop()


def wait_for_http(url: str, process: subprocess.Popen, log: Path, ready=None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited: {log.read_text()[-2000:]}")
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code < 500 and (ready is None or ready(response)):
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer: {log.read_text()[-2000:]}")
        time.sleep(0.5)


def start_process(args: list[str], environ: dict[str, str], log: Path, cwd: Path
                  ) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(args, env=environ, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM to the leader (`dagster dev` stops its own children), then SIGKILL to whatever
    of its process group is left."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


_JOBS_QUERY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"


@dataclass
class DagsterStack:
    env: AppEnv
    webserver_url: str
    api: ApiServer


@pytest.fixture(scope="module")
def dagster_stack(databases, pagila_template, tmp_path_factory) -> Iterator[DagsterStack]:
    """A pagila copy with documents, a real Dagster webserver and daemon on it, and
    `backup-pipeline api` as a subprocess pointed at that webserver: the deployment's shape, on
    loopback ports."""
    root = tmp_path_factory.mktemp("stack")
    url = databases.create(template=pagila_template)
    migrate(url)
    env = AppEnv(url, make_documents(root / "documents"), root / "backups",
                 make_dagster_home(root / "dagster_home"))
    webserver_url = f"http://127.0.0.1:{free_port()}"
    api_port = free_port()
    environ = api_environ(env, webserver_url)
    bin_dir = Path(CLI).parent
    # `dagster dev`: the webserver and the daemon, which dequeues runs (Dagster 1.13 queues
    # every launch by default) and runs the sensors, sharing one code server
    webserver = start_process(
        [str(bin_dir / "dagster"), "dev", "-m", "backup_pipeline.definitions",
         "-h", "127.0.0.1", "-p", webserver_url.rsplit(":", 1)[1]],
        environ, root / "webserver.log", root)
    api_process = None
    try:
        # ready when the code location is loaded and backup_job is launchable
        wait_for_http(str(httpx.URL(f"{webserver_url}/graphql", params={"query": _JOBS_QUERY})),
                      webserver, root / "webserver.log",
                      ready=lambda r: "backup_job" in r.text)
        api_process = start_process([CLI, "api", "--host", "127.0.0.1", "--port", str(api_port)],
                                    environ, root / "api.log", root)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_for_http(f"{api_url}/openapi.json", api_process, root / "api.log")
        yield DagsterStack(env, webserver_url, ApiServer(api_url, environ))
    finally:
        if api_process is not None:
            stop_process(api_process)
        stop_process(webserver)
        shutil.rmtree(root, ignore_errors=True)
