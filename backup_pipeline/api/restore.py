"""Restore operations: preview and execute (each a `restore_job` run), and restore status.

The rules are `backup_pipeline.restore`'s: the run verifies the archive, takes the safety
backup and refuses overlapping restores; this module only launches and reports.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from backup_pipeline.api.backups import completed_archive
from backup_pipeline.api.config import ApiConfig
from backup_pipeline.api.deps import Config, Launcher
from backup_pipeline.api.launcher import TRIGGER_TAG, DagsterLauncher
from backup_pipeline.api.models import Launched, StrictBody
from backup_pipeline.errors import NotFoundError, UnavailableError
from backup_pipeline.restore import runs

router = APIRouter(prefix="/api/admin/backups", tags=["restore"])

RESTORE_ID_TAG = "backup_pipeline/restore_id"
STATUS_PATH = "/api/admin/backups/restore/status"
Scope = Literal[tuple(runs.SCOPES)]  # type: ignore[valid-type]


class RestoreRequest(StrictBody):
    scope: Scope = Field(default="both", description="What to restore.")


class RestoreLaunched(Launched):
    restore_id: str
    backup_id: str
    dry_run: bool


class RestoreStatus(BaseModel):
    id: str | None = None
    backup_id: str | None = None
    safety_backup_id: str | None = None
    dry_run: bool | None = None
    scope: str | None = None
    state: Literal["pending", "running", "completed", "failed"] | None = Field(
        default=None, description="Empty when no restore has been run.")
    step: str | None = None
    trigger: str | None = None
    dagster_run_id: str | None = None
    run_status: str | None = Field(default=None,
                                   description="The Dagster run's status while it runs.")
    error_message: str | None = None
    warnings: list[Any] | None = None
    preview: dict[str, Any] | None = Field(
        default=None, description="A finished preview's result (with `restore_id`).")
    started_at: str | None = None
    finished_at: str | None = None
    created_at: str | None = None


def _launch(config: ApiConfig, launcher: DagsterLauncher, backup_id: str,
            body: RestoreRequest | None, *, dry_run: bool) -> dict[str, Any]:
    row, _ = completed_archive(config, backup_id)  # 404/409 at once, not inside the run
    if not dry_run:
        runs.refuse_during_restore(config.settings.database_url, "a restore")
    restore_id = str(uuid.uuid4())
    run_config = {"ops": {"start_restore": {"config": {
        "backup_id": row["id"], "dry_run": dry_run,
        "scope": body.scope if body else "both", "trigger": "api", "restore_id": restore_id,
    }}}}
    # previews change nothing: they may run beside a backup (the run queue orders them)
    run_id = launcher.launch("restore_job", run_config, exclusive=not dry_run,
                             tags={TRIGGER_TAG: "api", RESTORE_ID_TAG: restore_id})
    return {"restore_id": restore_id, "backup_id": row["id"], "dry_run": dry_run,
            "run_id": run_id, "status": "pending",
            "status_url": f"{STATUS_PATH}?restore_id={restore_id}"}


@router.post("/{backup_id}/restore/preview", status_code=202, response_model=RestoreLaunched,
             summary="Preview restore",
             responses={404: {"description": "Unknown backup, or it has no archive"},
                        409: {"description": "The backup has not ended yet"}})
def preview_restore(backup_id: str, config: Config, launcher: Launcher,
                    body: Annotated[RestoreRequest | None, Body()] = None) -> dict[str, Any]:
    """Launches `restore_job` with `dry_run: true`: the archive is verified and compared with
    the live database and documents; nothing changes. The result is in the restore status
    (`preview`) and in the run's metadata."""
    return _launch(config, launcher, backup_id, body, dry_run=True)


@router.post("/{backup_id}/restore", status_code=202, response_model=RestoreLaunched,
             summary="Execute restore",
             responses={404: {"description": "Unknown backup, or it has no archive"},
                        409: {"description": "A backup or restore is running"}})
def execute_restore(backup_id: str, config: Config, launcher: Launcher,
                    body: Annotated[RestoreRequest | None, Body()] = None) -> dict[str, Any]:
    """Launches `restore_job` with `dry_run: false`: a safety backup first, then the database
    and documents are replaced atomically."""
    return _launch(config, launcher, backup_id, body, dry_run=False)


def _not_started(launcher: DagsterLauncher, restore_id: str) -> dict[str, Any]:
    try:
        found = launcher.runs(tags={RESTORE_ID_TAG: restore_id}, limit=1)
    except UnavailableError:
        found = []
    if not found:
        raise NotFoundError(f"no restore with id {restore_id}")
    run = found[0]
    status: dict[str, Any] = {"id": restore_id, "state": "pending", "trigger": "api",
                              "dagster_run_id": run.run_id, "run_status": run.status}
    if run.finished:
        status["state"] = "failed"
        status["error_message"] = (f"the Dagster run ended ({run.status}) before the restore "
                                   f"started; see run {run.run_id}")
    return status


@router.get("/restore/status", response_model=RestoreStatus, summary="Get restore status")
def restore_status(
    config: Config, launcher: Launcher,
    restore_id: Annotated[str | None, Query(
        description="A restore or preview (as returned by preview or execute); without it, "
        "the latest restore")] = None,
) -> dict[str, Any]:
    url = config.settings.database_url
    if restore_id is not None:
        try:
            row = runs.get(url, restore_id)
        except NotFoundError:
            try:
                restore_id = str(uuid.UUID(restore_id))
            except ValueError:
                raise NotFoundError(f"no restore with id {restore_id!r} (ids are UUIDs)") \
                    from None
            return _not_started(launcher, restore_id)
    else:
        runs.reap(url)
        row = runs.latest(url)
        if row is None:
            return {}
    if row["state"] in ("pending", "running") and row.get("dagster_run_id"):
        try:
            run = launcher.run(row["dagster_run_id"])
            row["run_status"] = run.status if run else None
        except UnavailableError:
            pass
    return row
