"""Launching and watching Dagster runs through the webserver's GraphQL API.

Runs launched this way carry the code location's origin, show in the UI like any other run and
are seen by the run-status sensors. Launches use `dagster_graphql.DagsterGraphQLClient`; run
queries the client has no method for are plain GraphQL POSTs to the same endpoint.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from gql.transport.exceptions import TransportError, TransportQueryError

from backup_pipeline.errors import (
    BackupPipelineError,
    ConfigError,
    ConflictError,
    UnavailableError,
)

DEFAULT_URL = "http://localhost:3000"
ACTIVE_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
# a backup and a restore of the same database must never overlap, nor two of either
EXCLUSIVE_JOBS = ("backup_job", "restore_job")
BACKUP_ID_TAG = "backup_pipeline/backup_id"
TRIGGER_TAG = "backup_pipeline/trigger"

_RUNS_QUERY = """
query BackupPipelineRuns($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { runId jobName status startTime endTime tags { key value } } }
    ... on PythonError { message }
    ... on InvalidPipelineRunsFilterError { message }
  }
}
"""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    job_name: str
    status: str
    tags: dict[str, str]

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "job_name": self.job_name, "run_status": self.status}


class DagsterLauncher:
    """One webserver, given by its URL (DAGSTER_WEBSERVER_URL)."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: int = 30):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"DAGSTER_WEBSERVER_URL {url!r} is not an http(s) URL")
        self.url = url.strip().rstrip("/")
        self.timeout = timeout
        self._graphql_url = f"{self.url}/graphql"
        self._client = DagsterGraphQLClient(
            parts.hostname, port_number=parts.port, use_https=parts.scheme == "https",
            timeout=timeout, path_prefix=parts.path.rstrip("/"),
        )
        # check-then-launch must not interleave within this process; across processes the jobs'
        # own guards (catalog locks, run queue limits) hold
        self._launch_lock = threading.Lock()

    def _unavailable(self, exc: BaseException | None = None) -> UnavailableError:
        reason = f" ({type(exc).__name__})" if exc is not None else ""
        return UnavailableError(f"Dagster's webserver at {self.url} does not answer{reason}")

    def query(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            response = requests.post(self._graphql_url, json={"query": document,
                                                               "variables": variables},
                                     timeout=self.timeout)
        except requests.RequestException as exc:
            raise self._unavailable(exc) from None
        if response.status_code >= 500:
            raise self._unavailable()
        try:
            body = response.json()
        except ValueError:
            raise self._unavailable() from None
        if body.get("errors") or "data" not in body:
            messages = "; ".join(e.get("message", "") for e in body.get("errors") or [])
            raise BackupPipelineError(f"Dagster's GraphQL API refused the query: {messages}")
        return body["data"]

    def runs(self, *, statuses: tuple[str, ...] | None = None, tags: dict[str, str] | None = None,
             run_ids: list[str] | None = None, limit: int = 50) -> list[RunInfo]:
        run_filter: dict[str, Any] = {}
        if statuses:
            run_filter["statuses"] = list(statuses)
        if tags:
            run_filter["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        if run_ids:
            run_filter["runIds"] = run_ids
        data = self.query(_RUNS_QUERY, {"filter": run_filter, "limit": limit})["runsOrError"]
        if data["__typename"] != "Runs":
            raise BackupPipelineError(f"Dagster could not list runs: {data.get('message')}")
        return [RunInfo(r["runId"], r["jobName"], r["status"],
                        {t["key"]: t["value"] for t in r["tags"]}) for r in data["results"]]

    def run(self, run_id: str) -> RunInfo | None:
        found = self.runs(run_ids=[run_id], limit=1)
        return found[0] if found else None

    def active_exclusive_run(self) -> RunInfo | None:
        """A backup or restore run that has not ended, if there is one."""
        for run in self.runs(statuses=ACTIVE_STATUSES, limit=100):
            if run.job_name in EXCLUSIVE_JOBS:
                return run
        return None

    def launch(self, job_name: str, run_config: dict[str, Any],
               tags: dict[str, str] | None = None, *, exclusive: bool = True) -> str:
        """Launch a run and return its id. With `exclusive`, refuse while a backup or restore
        runs (ConflictError naming it)."""
        with self._launch_lock:
            if exclusive:
                busy = self.active_exclusive_run()
                if busy is not None:
                    kind = "a restore" if busy.job_name == "restore_job" else "a backup"
                    raise ConflictError(f"{kind} is already running (Dagster run {busy.run_id}, "
                                        f"{busy.status}); try again when it has ended")
            try:
                return self._client.submit_job_execution(job_name, run_config=run_config,
                                                         tags=tags or {})
            except DagsterGraphQLClientError as exc:
                cause = _transport_failure(exc)
                if cause is not None:
                    raise self._unavailable(cause) from None
                raise BackupPipelineError(_client_error(job_name, exc)) from None


def _transport_failure(exc: BaseException) -> BaseException | None:
    """The connection or server error somewhere in the client error's chain, if any."""
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        if isinstance(seen, requests.RequestException | TransportError) \
                and not isinstance(seen, TransportQueryError):  # a GraphQL error is an answer
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _client_error(job_name: str, exc: DagsterGraphQLClientError) -> str:
    kind, *rest = exc.args or ("error",)
    detail = rest[0] if rest else ""
    if isinstance(detail, list):  # run config errors: a list of {message: ...}
        detail = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                           for e in detail)
    text = " ".join(str(detail).split())[:500]
    return f"Dagster refused to launch {job_name}: {kind}{': ' + text if text else ''}"
