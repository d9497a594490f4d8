"""The backups that exist: their records, their files, checking and deleting them.

Shared by the CLI and the admin API, so both apply the same rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive import reader
from backup_pipeline.catalog import history
from backup_pipeline.errors import (
    ArchiveError,
    BackupPipelineError,
    ConflictError,
    NotFoundError,
)
from backup_pipeline.offsite import cleanup as offsite
from backup_pipeline.postgres import connect
from backup_pipeline.restore.runs import restores_using
from backup_pipeline.settings import Settings


def archive_path(settings: Settings, row: dict[str, Any]) -> Path | None:
    return settings.backup_dir / row["file_name"] if row.get("file_name") else None


def show(settings: Settings, backup_id: str) -> dict[str, Any]:
    """The record with its manifest summary (read from the archive's first member)."""
    row = history.get(settings.database_url, backup_id)
    path = archive_path(settings, row)
    row["file_exists"] = bool(path and path.is_file())
    row["manifest"] = None
    if row["file_exists"]:
        try:
            row["manifest"] = mf.summary(reader.read_manifest(path))
        except ArchiveError as exc:
            row["manifest_error"] = str(exc)
    row["offsite"] = offsite.state(settings, row["id"])
    return row


def verify(settings: Settings | None, id_or_path: str) -> dict[str, Any]:
    """Check an archive by backup id or by path; raises ArchiveError when anything is off."""
    candidate = Path(id_or_path)
    row = None
    if candidate.is_file():
        path = candidate
    else:
        if settings is None:
            raise NotFoundError(f"no archive at {id_or_path}")
        row = history.get(settings.database_url, id_or_path)
        path = archive_path(settings, row)
        if path is None:
            raise NotFoundError(f"backup {row['id']} has no archive (status {row['status']})")
        if not path.is_file():
            raise ArchiveError(f"archive {path.name} of backup {row['id']} is missing on disk")
    report = reader.verify(path)
    if row is not None and row.get("sha256") and report.sha256 != row["sha256"]:
        raise ArchiveError(f"{path.name} does not match the sha256 recorded in the catalog")
    return {
        "ok": True,
        "backup_id": report.manifest.get("backup_id"),
        "file_name": path.name,
        "members": report.members,
        "bytes_checked": report.bytes_checked,
        "dump_complete": report.dump_complete,
        "format_version": report.manifest["format_version"],
    }


def delete(settings: Settings, backup_id: str) -> dict[str, Any]:
    """Remove the archive, then its record; a backup still being written is refused."""
    row = history.get(settings.database_url, backup_id)
    if row["status"] in ("pending", "in_progress"):
        raise ConflictError(f"backup {row['id']} is {row['status']}; it cannot be deleted "
                            "until it ends")
    with connect(settings.database_url) as conn:
        if restores_using(conn, [row["id"]]):
            raise ConflictError(f"backup {row['id']} is being restored or previewed; it cannot "
                                "be deleted until that ends ('backup-pipeline restore-status')")
    path = archive_path(settings, row)
    file_removed = False
    if path is not None:
        try:
            path.unlink()
            file_removed = True
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise BackupPipelineError(f"cannot delete {path.name}: {exc.strerror}") from None
    history.delete(settings.database_url, row["id"])
    return {"deleted": row["id"], "file_name": row.get("file_name"),
            "file_removed": file_removed, "offsite": offsite.remove(settings, row["id"])}
