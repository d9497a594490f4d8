"""Upload: an archive made elsewhere joins the catalog as type `uploaded`, if it passes.

The body is streamed to a private quarantine file under `BACKUP_DIR/.upload/` (413 past
API_UPLOAD_MAX_BYTES), then moved (not copied) into
`backup_pipeline.restore.importer.import_archive`, the very check `backup-pipeline import`
makes; a rejected archive leaves no file and no row.
"""

from __future__ import annotations

import time
import uuid
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from backup_pipeline.api import quarantine
from backup_pipeline.api.deps import Config
from backup_pipeline.api.models import BackupRecord
from backup_pipeline.backup.service import ensure_private_dir
from backup_pipeline.restore import importer

router = APIRouter(prefix="/api/admin/backups", tags=["backups"])

QUARANTINE = ".upload"
STALE_SECONDS = 24 * 3600

_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"},
                           "note": {"type": "string", "maxLength": quarantine.MAX_NOTE}}}},
        "application/gzip": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _sweep(folder) -> None:
    """Quarantine files of uploads that crashed the server mid-way, older than a day."""
    cutoff = time.time() - STALE_SECONDS
    for entry in folder.iterdir():
        with suppress(OSError):
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink()


@router.post(
    "/upload", status_code=201, response_model=BackupRecord, summary="Upload backup file",
    openapi_extra={"requestBody": _BODY},
    responses={409: {"description": "The archive is already in the catalog, or a restore "
                                    "is running"},
               413: {"description": "Larger than API_UPLOAD_MAX_BYTES"},
               422: {"description": "Not a valid archive; nothing was stored"}},
)
async def upload_backup(request: Request, config: Config) -> dict[str, Any]:
    """`multipart/form-data` with the archive as field `file` (and an optional `note`), or
    the archive itself as an `application/gzip` body (`?note=` optional). The archive is
    checked completely (gzip, tar, manifest, names, sizes and sha256, complete dump, no psql
    meta-commands) before it is listed."""
    settings = config.settings
    folder = settings.backup_dir / QUARANTINE
    ensure_private_dir(settings.backup_dir)
    ensure_private_dir(folder)
    await run_in_threadpool(_sweep, folder)
    path = folder / f"{uuid.uuid4()}.tar.gz"
    try:
        received = await quarantine.receive(request, path, config.upload_limit)
        note = received.note or f"uploaded {received.file_name or 'over the admin API'}"
        return await run_in_threadpool(importer.import_archive, settings, path, note=note,
                                       trigger="upload", take=True)
    finally:
        path.unlink(missing_ok=True)
