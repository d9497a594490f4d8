"""`POST /api/admin/backups/{id}/offsite`: copy one backup offsite now (or again)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from backup_pipeline.api.deps import Config, Launcher
from backup_pipeline.api.launcher import BACKUP_ID_TAG, TRIGGER_TAG
from backup_pipeline.api.models import OffsitePushLaunched
from backup_pipeline.catalog import history
from backup_pipeline.errors import ConflictError

router = APIRouter(prefix="/api/admin/backups", tags=["offsite"])


@router.post("/{backup_id}/offsite", status_code=202, response_model=OffsitePushLaunched,
             summary="Copy a backup offsite",
             responses={404: {"description": "Unknown backup"},
                        409: {"description": "Offsite copies are off, or the backup has no "
                              "archive yet"}})
def push_offsite(backup_id: str, request: Request, response: Response, config: Config,
                 launcher: Launcher) -> dict[str, Any]:
    """Launches `offsite_job` for this backup through Dagster's GraphQL API; the backup's
    details (`offsite`) show the copy's state as it goes."""
    if config.offsite is None:
        raise ConflictError("offsite copies are off: OFFSITE_URL is not set")
    row = history.get(config.settings.database_url, backup_id)
    if row["status"] != "completed" or not row.get("file_name"):
        raise ConflictError(f"backup {row['id']} is {row['status']}; only a completed backup "
                            "with an archive can be copied offsite")
    run_id = launcher.launch(
        "offsite_job", {"ops": {"offsite_catch_up": {"config": {"backup_ids": [row["id"]]}}}},
        tags={TRIGGER_TAG: "api", BACKUP_ID_TAG: row["id"]}, exclusive=False)
    status_url = str(request.url_for("get_backup", backup_id=row["id"]).path)
    response.headers["Location"] = status_url
    return {"backup_id": row["id"], "run_id": run_id, "status": "pending",
            "status_url": status_url}
