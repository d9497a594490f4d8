"""Copies of deleted backups: deleted with them, or, while Object Lock holds them (or the
storage does not answer), kept in the catalog with `backup_deleted_at` until the sweep can.
A local deletion never fails because of its offsite copy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backup_pipeline.errors import ConfigError
from backup_pipeline.offsite import catalog, storage
from backup_pipeline.offsite.config import OffsiteError
from backup_pipeline.offsite.config import from_env as config_from_env
from backup_pipeline.settings import Settings

SHOWN = ("key", "state", "bytes", "copied_at", "attempts", "last_error", "next_attempt_at",
         "retain_until", "object_sha256", "archive_sha256", "bucket", "encrypted")


def state(settings: Settings, backup_id: str) -> dict[str, Any] | None:
    """The copy's state for `show`; None when the backup has no copy record."""
    row = catalog.get(settings.database_url, backup_id)
    return {k: row[k] for k in SHOWN} if row else None


def locked(copy: dict[str, Any], now: datetime) -> bool:
    until = copy.get("retain_until")
    return bool(until) and datetime.fromisoformat(until) > now


def remove(settings: Settings, backup_id: str) -> dict[str, Any] | None:
    """After a backup was deleted: delete its copy too, unless Object Lock still holds it or
    the storage does not answer; then the row stays for the sweep. Never raises for that:
    the local deletion stands either way. None when the backup had no copy."""
    copy = catalog.get(settings.database_url, backup_id)
    if copy is None:
        return None
    now = datetime.now(UTC)
    if locked(copy, now):
        catalog.deleted_backup(settings.database_url, backup_id)
        return {"removed": False, "key": copy["key"],
                "reason": f"Object Lock keeps it until {copy['retain_until']}; deleted then"}
    try:
        config = config_from_env()
        if config is None:
            raise OffsiteError("offsite copies are off (OFFSITE_URL unset)")
        storage.delete(storage.make_client(config), copy["bucket"], copy["key"],
                       copy["version_id"])
    except (*storage.STORAGE_ERRORS, ConfigError) as exc:
        catalog.deleted_backup(settings.database_url, backup_id)
        return {"removed": False, "key": copy["key"],
                "reason": f"{storage.describe_error(exc)}; retried by the offsite sweep"}
    catalog.forget(settings.database_url, backup_id)
    return {"removed": True, "key": copy["key"]}


def sweep(settings: Settings, client, removed: list[str], still_locked: list[dict[str, Any]],
          errors: list[str]) -> None:
    """Delete the copies of deleted backups whose Object Lock has run out."""
    now = datetime.now(UTC)
    for copy in catalog.orphans(settings.database_url):
        if locked(copy, now):
            still_locked.append({"key": copy["key"], "retain_until": copy["retain_until"]})
            continue
        try:
            storage.delete(client, copy["bucket"], copy["key"], copy["version_id"])
        except storage.STORAGE_ERRORS as exc:
            errors.append(f"{copy['key']} not deleted: {storage.describe_error(exc)}")
            continue
        catalog.forget(settings.database_url, copy["backup_id"])
        removed.append(copy["key"])
