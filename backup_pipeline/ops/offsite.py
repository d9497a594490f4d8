"""Offsite ops: the copy step of backup_job and the catch-up of offsite_job. The work is in
backup_pipeline.offsite.

The copy never fails its backup run: the step retries with backoff (RetryPolicy), and on its
last attempt records the failure (state `failed`, a mail queued in the outbox) and succeeds,
so the run still says what is true, that the backup was made. The catch-up sensor copies it
later.
"""

import os

import dagster as dg
from pydantic import Field

from backup_pipeline.errors import BackupPipelineError
from backup_pipeline.offsite import cleanup, service
from backup_pipeline.offsite.config import OffsiteConfig
from backup_pipeline.ops.backup import _settings
from backup_pipeline.postgres import one_line
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.resources.offsite import OffsiteResource
from backup_pipeline.resources.smtp import SmtpResource
from backup_pipeline.resources.storage import StorageResource

OFFSITE_ASSET = dg.AssetKey("motovaultpro_backup_offsite")
COPY_RETRY = dg.RetryPolicy(max_retries=3, delay=3, backoff=dg.Backoff.EXPONENTIAL)


def _mail(context: dg.OpExecutionContext, smtp: SmtpResource) -> service.Mail:
    try:
        configured = smtp.config() is not None
    except BackupPipelineError:
        configured = True  # set but invalid: the outbox keeps the mail until it is fixed
    return service.Mail(configured=configured, run_id=context.run_id,
                        webserver_url=os.environ.get("DAGSTER_WEBSERVER_URL"))


def materialize(context: dg.OpExecutionContext, config: OffsiteConfig, row: dict) -> None:
    """One materialization of the offsite asset per copy made."""
    context.log_event(dg.AssetMaterialization(
        asset_key=OFFSITE_ASSET,
        description=f"copy of backup {row['backup_id']} in {config.url}",
        metadata={
            "backup_id": row["backup_id"],
            "key": row["key"],
            "target": config.describe(),
            "object_bytes": dg.MetadataValue.int(row["bytes"]),
            "object_sha256": row["object_sha256"],
            "archive_sha256": row["archive_sha256"],
            "attempts": dg.MetadataValue.int(row["attempts"]),
            "retain_until": str(row.get("retain_until") or ""),
        },
    ))


@dg.op(
    description="Copy the new archive to OFFSITE_URL, age-encrypted on the fly into a multipart "
    "upload. Retried with backoff; when every attempt failed the copy is recorded as failed "
    "(mailed, retried by offsite_catch_up_sensor) and the backup still stands.",
    retry_policy=COPY_RETRY,
)
def offsite_copy(context: dg.OpExecutionContext, backup: dict, database: DatabaseResource,
                 storage: StorageResource, offsite: OffsiteResource, smtp: SmtpResource) -> dict:
    config = offsite.config()
    if config is None:
        context.add_output_metadata({"state": "off", "why": "OFFSITE_URL is not set"})
        return {"state": "off"}
    settings = _settings(database, storage)
    if backup["backup_type"] == "safety":
        row = service.defer(settings, config, backup["id"])
        context.add_output_metadata({"state": row["state"], "key": row["key"], "why":
                                     "a safety backup is copied by the catch-up, so the "
                                     "restore does not wait for an upload"})
        return row
    final = context.retry_number >= COPY_RETRY.max_retries
    try:
        row = service.push(settings, config, offsite.client(config), backup["id"],
                           final=final, mail=_mail(context, smtp))
    except BackupPipelineError as exc:
        if not final:
            context.log.warning(f"offsite copy attempt {context.retry_number + 1} failed: "
                                f"{one_line(exc)}; retrying")
            raise
        copy = cleanup.state(settings, backup["id"]) or {}
        context.log.error(f"offsite copy failed after {context.retry_number + 1} attempts: "
                          f"{one_line(exc)}. The backup is kept; the copy is retried by "
                          "offsite_catch_up_sensor.")
        context.add_output_metadata({
            "state": "failed", "target": config.describe(), "error": one_line(exc),
            "key": copy.get("key") or "", "next_attempt_at": str(copy.get("next_attempt_at")),
        })
        return {**copy, "state": "failed"}
    materialize(context, config, row)
    context.add_output_metadata({"state": row["state"], "key": row["key"],
                                 "target": config.describe(),
                                 "object_bytes": dg.MetadataValue.int(row["bytes"]),
                                 "attempts": dg.MetadataValue.int(row["attempts"])})
    return row


class CatchUpConfig(dg.Config):
    backup_ids: list[str] | None = Field(
        default=None, description="Copy these backups (now, or again); default: every copy "
        "that is due (failed ones whose retry time has come, and backups without a copy).")


@dg.op(description="Copy every offsite copy that is due, and delete the copies of deleted "
       "backups whose Object Lock has run out.")
def offsite_catch_up(context: dg.OpExecutionContext, config: CatchUpConfig,
                     database: DatabaseResource, storage: StorageResource,
                     offsite: OffsiteResource, smtp: SmtpResource) -> dict:
    target = offsite.config()
    if target is None:
        context.add_output_metadata({"state": "off"})
        return {"state": "off"}
    settings = _settings(database, storage)
    client = offsite.client(target)
    report = service.catch_up(settings, target, client, mail=_mail(context, smtp),
                              backup_ids=config.backup_ids)
    for done in report.copied:
        materialize(context, target, cleanup.state(settings, done["backup_id"]) | {
            "backup_id": done["backup_id"]})
    for failure in report.failed:
        context.log.error(f"backup {failure['backup_id']}: {failure['error']}")
    for error in report.errors:
        context.log.error(error)
    context.add_output_metadata({
        **{k: dg.MetadataValue.int(v) for k, v in report.summary().items()},
        "target": target.describe(),
        "failed_list": dg.MetadataValue.text("\n".join(
            f"{f['backup_id']}: {f['error']}" for f in report.failed)),
        "still_locked_list": dg.MetadataValue.text("\n".join(
            f"{c['key']} until {c['retain_until']}" for c in report.still_locked)),
    })
    if config.backup_ids and report.failed:
        raise dg.Failure(description=f"offsite copy failed: {report.failed[0]['error']}")
    return report.summary()
