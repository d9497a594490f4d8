"""Restore drills on demand: each a `drill_job` run (the work is `backup_pipeline.drills`)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from backup_pipeline.api.backups import completed_archive
from backup_pipeline.api.deps import Config, Launcher
from backup_pipeline.api.launcher import TRIGGER_TAG
from backup_pipeline.api.models import Launched
from backup_pipeline.errors import NotFoundError

router = APIRouter(prefix="/api/admin/backups", tags=["drill"])

DRILL_BACKUP_TAG = "backup_pipeline/drill_backup_id"
STATUS_PATH = "/api/admin/backups/drill/status"


class DrillLaunched(Launched):
    backup_id: str


class DrillStatus(BaseModel):
    run_id: str
    backup_id: str | None = None
    run_status: str
    passed: bool | None = Field(
        default=None, description="Whether the drill passed, once its run has ended (a drill "
        "that fails fails its run); its details are the restore_drill check of "
        "motovaultpro_backup in Dagster.")


@router.post("/{backup_id}/drill", status_code=202, response_model=DrillLaunched,
             summary="Run a restore drill",
             responses={404: {"description": "Unknown backup, or it has no archive"},
                        409: {"description": "The backup has not ended yet"}})
def launch_drill(backup_id: str, config: Config, launcher: Launcher) -> dict[str, Any]:
    """Launches `drill_job`: the backup is restored into a scratch database and folder,
    compared with its manifest (rows per table, every document's sha256), timed and dropped.
    The live database and documents are never touched, so it runs beside backups."""
    row, _ = completed_archive(config, backup_id)  # 404/409 at once, not inside the run
    run_id = launcher.launch(
        "drill_job", {"ops": {"run_restore_drill": {"config": {"backup_id": row["id"]}}}},
        exclusive=False, tags={TRIGGER_TAG: "api", DRILL_BACKUP_TAG: row["id"]})
    return {"run_id": run_id, "backup_id": row["id"], "status": "pending",
            "status_url": f"{STATUS_PATH}?run_id={run_id}"}


@router.get("/drill/status", response_model=DrillStatus, summary="Get restore drill status")
def drill_status(run_id: str, launcher: Launcher) -> dict[str, Any]:
    try:
        run_id = str(uuid.UUID(run_id))
    except ValueError:
        raise NotFoundError(f"no restore drill run {run_id!r} (run ids are UUIDs)") from None
    run = launcher.run(run_id)
    if run is None or run.job_name != "drill_job":
        raise NotFoundError(f"no restore drill run {run_id}")
    passed = None if not run.finished else run.status == "SUCCESS"
    return {"run_id": run.run_id, "backup_id": run.tags.get(DRILL_BACKUP_TAG),
            "run_status": run.status, "passed": passed}
