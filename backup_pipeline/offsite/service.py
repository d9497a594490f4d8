"""Offsite copies: push a backup, catch up what failed, delete copies of deleted backups,
and pull a copy back in as an untrusted archive.

A copy never fails or removes its local backup: a failed push is recorded (and mailed once per
failure episode) and retried by the catch-up. Callers pass a boto3 S3 client, so the Dagster
resource, the CLI and the API share this code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backup_pipeline.catalog import history
from backup_pipeline.errors import ConflictError, NotFoundError
from backup_pipeline.offsite import catalog, cleanup, notify, storage
from backup_pipeline.offsite.config import OffsiteConfig, OffsiteError
from backup_pipeline.postgres import one_line
from backup_pipeline.settings import Settings


@dataclass(frozen=True)
class Mail:
    """How a failure is mailed: whether SMTP is set up where mail is sent, and for links."""

    configured: bool = False
    run_id: str | None = None
    webserver_url: str | None = None


def push(settings: Settings, config: OffsiteConfig, client, backup_id: str, *,
         final: bool = True, mail: Mail | None = None) -> dict[str, Any]:
    """Copy one completed backup now (or again); returns the copy's row. A failure is recorded
    (final: `failed`, retried later, mailed if it starts a failure episode) and raised as
    OffsiteError with one line."""
    backup = history.get(settings.database_url, backup_id)
    if backup["status"] != "completed" or not backup.get("file_name"):
        raise ConflictError(f"backup {backup['id']} is {backup['status']}; only a completed "
                            "backup with an archive can be copied offsite")
    key = config.object_key(backup["file_name"])
    with catalog.copying(settings.database_url, backup["id"]) as mine:
        if not mine:
            raise ConflictError(f"backup {backup['id']} is being copied offsite by another "
                                "process right now")
        catalog.start(settings.database_url, backup["id"], config.bucket, key, config.encrypted)
        try:
            path = settings.backup_dir / backup["file_name"]
            if not path.is_file():
                raise OffsiteError(f"archive {path.name} is missing on disk")
            done = storage.upload(client, config, path, key, backup)
        except storage.STORAGE_ERRORS as exc:
            error = f"copy to {config.url} failed: {storage.describe_error(exc)}"
            row, first = catalog.failed(settings.database_url, backup["id"], error,
                                        final=final)
            if first:
                mail = mail or Mail()
                notify.queue_failure(settings.database_url, row, backup, target=config.url,
                                     mail_configured=mail.configured, run_id=mail.run_id,
                                     webserver_url=mail.webserver_url)
            raise OffsiteError(error) from None
    return catalog.copied(settings.database_url, backup["id"], version_id=done.version_id,
                          bytes_=done.bytes, object_sha256=done.object_sha256,
                          archive_sha256=done.archive_sha256, retain_until=done.retain_until)


def defer(settings: Settings, config: OffsiteConfig, backup_id: str) -> dict[str, Any]:
    """Leave the copy to the catch-up (`pending`, no attempt yet)."""
    backup = history.get(settings.database_url, backup_id)
    catalog.start(settings.database_url, backup["id"], config.bucket,
                  config.object_key(backup["file_name"]), config.encrypted, attempt=False)
    return cleanup.state(settings, backup["id"])


@dataclass
class CatchUpReport:
    copied: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    still_locked: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {"copied": len(self.copied), "failed": len(self.failed),
                "removed": len(self.removed), "still_locked": len(self.still_locked),
                "errors": len(self.errors)}


def catch_up(settings: Settings, config: OffsiteConfig, client, *, mail: Mail | None = None,
             backup_ids: list[str] | None = None) -> CatchUpReport:
    """Push every copy that is due (or the ones given), then sweep deleted backups' copies."""
    report = CatchUpReport()
    for backup_id in catalog.due(settings.database_url) if backup_ids is None else backup_ids:
        try:
            row = push(settings, config, client, backup_id, mail=mail)
            report.copied.append({"backup_id": backup_id, "key": row["key"],
                                  "bytes": row["bytes"]})
        except (OffsiteError, ConflictError, NotFoundError) as exc:
            report.failed.append({"backup_id": backup_id, "error": one_line(exc)})
    cleanup.sweep(settings, client, report.removed, report.still_locked, report.errors)
    return report


def status(settings: Settings, config: OffsiteConfig | None) -> dict[str, Any]:
    out: dict[str, Any] = {"enabled": config is not None,
                           "target": config.describe() if config else None}
    out.update(catalog.counts(settings.database_url))
    out["lag_seconds"] = catalog.lag_seconds(settings.database_url)
    return out


