"""The compose deployment's Dagster processes, run on this machine for tests.

The user-code gRPC server, the webserver and the daemon are started as docker-compose.yml starts
them, with deploy/dagster.yaml as the instance (Postgres storage in a throwaway database) and a
workspace naming the gRPC server, so a test sees what an operator of the compose stack sees.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from backup_pipeline.postgres import parse_url

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"
LOCATION = "backup_pipeline"
# Only the code server gets these in docker-compose.yml; the webserver and daemon must do without.
APP_ONLY_ENV = ("DATABASE_URL", "DOCUMENTS_DIR", "BACKUP_DIR", "REDIS_URL")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dagster_pg_env(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for the database at url."""
    p = parse_url(url)
    return {
        "DAGSTER_PG_HOST": p.get("host", "127.0.0.1"),
        "DAGSTER_PG_PORT": p.get("port", "5432"),
        "DAGSTER_PG_DB": p["dbname"],
        "DAGSTER_PG_USER": p.get("user", ""),
        "DAGSTER_PG_PASSWORD": p.get("password", ""),
    }


def production_home(path: Path) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.yaml as it is."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PRODUCTION_DAGSTER_YAML, path / "dagster.yaml")
    return path


def _keep_interrupts() -> None:
    # Dagster handles SIGTERM like SIGINT: a SIGINT ignored by the shell that started pytest
    # would make these processes ignore SIGTERM too.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class DagsterStack:
    """code server, webserver and daemon; each in its own process group, stopped together."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env
        self.grpc_port = free_port()
        self.web_port = free_port()
        while self.web_port == self.grpc_port:
            self.web_port = free_port()
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.workspace = root / "workspace.yaml"
        self.workspace.write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {self.grpc_port}\n      location_name: {LOCATION}\n"
        )

    def _spawn(self, name: str, *args: str, app_env: bool = False) -> None:
        env = self.env if app_env else {k: v for k, v in self.env.items()
                                         if k not in APP_ONLY_ENV}
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen(
            [str(BIN / args[0]), *args[1:]], env=env, cwd=self.root, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_keep_interrupts,
        )
        log.close()

    def start(self, timeout: float = 60.0) -> DagsterStack:
        deadline = time.monotonic() + timeout
        self._spawn("code-server", "dagster", "api", "grpc", "-m", "backup_pipeline.definitions",
                    "-h", "127.0.0.1", "-p", str(self.grpc_port), app_env=True)
        self._wait("code server", self._grpc_ready, deadline)
        self._spawn("webserver", "dagster-webserver", "-h", "127.0.0.1", "-p",
                    str(self.web_port), "-w", str(self.workspace))
        self._spawn("daemon", "dagster-daemon", "run", "-w", str(self.workspace))
        self._wait("webserver", self._location_loaded, deadline)
        return self

    def _wait(self, what: str, ready, deadline: float) -> None:
        while not ready():
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up:\n{self.logs()}")
            time.sleep(0.5)

    def _grpc_ready(self) -> bool:
        from dagster._grpc.client import DagsterGrpcClient

        try:
            DagsterGrpcClient(port=self.grpc_port, host="127.0.0.1").ping("up")
        except Exception:
            return False
        return True

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql", data=json.dumps({"query": query,
                                                    "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["data"]

    def _location_loaded(self) -> bool:
        try:
            data = self.graphql("{ workspaceOrError { ... on Workspace { locationEntries {"
                                " name locationOrLoadError { __typename } } } } }")
        except OSError:
            return False
        entries = data["workspaceOrError"].get("locationEntries") or []
        return any(e["name"] == LOCATION and (e["locationOrLoadError"] or {}).get("__typename")
                   == "RepositoryLocation" for e in entries)

    def logs(self, tail: int = 3000) -> str:
        parts = []
        for name in self.processes:
            text = (self.root / f"{name}.log").read_text(errors="replace")
            parts.append(f"--- {name} ---\n{text[-tail:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            with contextlib.suppress(ProcessLookupError):  # and what it left in its group
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
