"""Backup operations: list, create (a Dagster run), details, download, delete."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import StreamingResponse

from backup_pipeline.api.config import ApiConfig
from backup_pipeline.api.deps import Config, Launcher
from backup_pipeline.api.launcher import BACKUP_ID_TAG, TRIGGER_TAG, DagsterLauncher
from backup_pipeline.api.models import (
    BackupDetails,
    BackupLaunched,
    BackupPage,
    BackupStatus,
    BackupType,
    CreateBackup,
    Deleted,
)
from backup_pipeline.backup import inventory
from backup_pipeline.catalog import history
from backup_pipeline.errors import (
    BackupPipelineError,
    ConflictError,
    NotFoundError,
    UnavailableError,
)
from backup_pipeline.restore import runs

router = APIRouter(prefix="/api/admin/backups", tags=["backups"])
CHUNK = 1024 * 1024


@router.get("", response_model=BackupPage, summary="List backups with pagination")
def list_backups(
    config: Config,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 20,
    type: Annotated[BackupType | None, Query(description="Only backups of this type")] = None,
    status: Annotated[BackupStatus | None, Query(description="Only backups in this state")] = None,
) -> dict[str, Any]:
    """Newest first, in a stable order; a page past the end has no items and the same total."""
    return history.list_page(config.settings.database_url, page=page, page_size=page_size,
                             backup_type=type, status=status)


@router.post("", status_code=202, response_model=BackupLaunched,
             summary="Create manual backup",
             responses={409: {"description": "A backup or restore is already running"}})
def create_backup(
    request: Request, response: Response, config: Config, launcher: Launcher,
    body: Annotated[CreateBackup | None, Body()] = None,
) -> dict[str, Any]:
    """Launches `backup_job` through Dagster's GraphQL API. The backup's id is chosen here and
    passed in the run config, so it is known at once: `GET /api/admin/backups/{backup_id}` shows
    it as `pending` until the run has started, then as the catalog records it."""
    runs.reap(config.settings.database_url)  # a restore whose process died
    runs.refuse_during_restore(config.settings.database_url, "a backup")
    backup_id = str(uuid.uuid4())
    run_config = {"ops": {"start_backup": {"config": {
        "backup_type": "manual", "trigger": "api", "note": body.note if body else None,
        "backup_id": backup_id,
    }}}}
    run_id = launcher.launch("backup_job", run_config,
                             tags={TRIGGER_TAG: "api", BACKUP_ID_TAG: backup_id})
    status_url = str(request.url_for("get_backup", backup_id=backup_id).path)
    response.headers["Location"] = status_url
    return {"backup_id": backup_id, "run_id": run_id, "status": "pending",
            "status_url": status_url}


def _launched_but_not_started(launcher: DagsterLauncher, backup_id: str) -> dict[str, Any]:
    """A backup the API launched whose run has not yet written its catalog row."""
    try:
        backup_id = str(uuid.UUID(backup_id))
    except ValueError:
        raise NotFoundError(f"no backup with id {backup_id!r} (ids are UUIDs)") from None
    try:
        runs = launcher.runs(tags={BACKUP_ID_TAG: backup_id}, limit=1)
    except UnavailableError:
        raise NotFoundError(f"no backup with id {backup_id} (Dagster's webserver does not "
                            "answer, so a launch not yet started cannot be seen)") from None
    if not runs:
        raise NotFoundError(f"no backup with id {backup_id}")
    run = runs[0]
    record: dict[str, Any] = {"id": backup_id, "backup_type": "manual",
                              "trigger": run.tags.get(TRIGGER_TAG), "status": "pending",
                              "dagster_run_id": run.run_id, "run_status": run.status}
    if run.finished:  # the run ended before its first step recorded the backup
        record["status"] = "failed"
        record["error_message"] = (f"the Dagster run ended ({run.status}) before the backup "
                                   f"started; see run {run.run_id}")
    return record


@router.get("/{backup_id}", response_model=BackupDetails, summary="Get backup details",
            responses={404: {"description": "Unknown backup"}})
def get_backup(backup_id: str, config: Config, launcher: Launcher) -> dict[str, Any]:
    """The catalog record with its manifest summary; for a backup not yet ended also the
    Dagster run's status (left empty when the webserver does not answer)."""
    try:
        record = inventory.show(config.settings, backup_id)
    except NotFoundError:
        return _launched_but_not_started(launcher, backup_id)
    if record["status"] in ("pending", "in_progress") and record.get("dagster_run_id"):
        try:
            run = launcher.run(record["dagster_run_id"])
            record["run_status"] = run.status if run else None
        except UnavailableError:
            record["run_status"] = None
    return record


def completed_archive(config: ApiConfig, backup_id: str) -> tuple[dict[str, Any], Path]:
    """The record and archive path of a backup that has one: 404 for an unknown backup or one
    without an archive, 409 for one still being written."""
    row = history.get(config.settings.database_url, backup_id)
    if row["status"] in ("pending", "in_progress"):
        raise ConflictError(f"backup {row['id']} is {row['status']}; its archive is not ready")
    path = inventory.archive_path(config.settings, row)
    if path is None or path.name != row["file_name"]:
        raise NotFoundError(f"backup {row['id']} has no archive (status {row['status']})")
    return row, path


def content_disposition(name: str) -> str:
    """`attachment` with the file name; RFC 6266's `filename*` when it is not plain ASCII."""
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    value = f'attachment; filename="{plain}"'
    return value if plain == name else f"{value}; filename*=UTF-8''{quote(name, safe='')}"


def _stream(handle) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


@router.get("/{backup_id}/download", summary="Download backup file",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/gzip": {}},
                             "description": "The .tar.gz archive"},
                       404: {"description": "Unknown backup, or it has no archive"},
                       409: {"description": "The backup has not ended yet"}})
def download_backup(backup_id: str, config: Config) -> StreamingResponse:
    row, path = completed_archive(config, backup_id)
    try:
        # opened before answering: a file deleted meanwhile still streams whole
        handle = open(path, "rb")  # noqa: SIM115 - closed by _stream
    except FileNotFoundError:
        raise NotFoundError(f"the archive of backup {row['id']} is missing on disk") from None
    except OSError as exc:
        raise BackupPipelineError(f"cannot read the archive of backup {row['id']}: "
                                  f"{exc.strerror}") from None
    headers = {
        "Content-Disposition": content_disposition(row["file_name"]),
        "Content-Length": str(os.fstat(handle.fileno()).st_size),
    }
    if row.get("sha256"):
        headers["X-Backup-Sha256"] = row["sha256"]
    return StreamingResponse(_stream(handle), media_type="application/gzip", headers=headers)


@router.delete("/{backup_id}", response_model=Deleted, summary="Delete backup",
               responses={404: {"description": "Unknown backup"},
                          409: {"description": "The backup has not ended yet, or a restore "
                                "or preview of it is running"}})
def delete_backup(backup_id: str, config: Config) -> dict[str, Any]:
    """Removes the archive file, then its record."""
    return inventory.delete(config.settings, backup_id)
