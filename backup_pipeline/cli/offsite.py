"""`offsite status | list | push ID | pull KEY`: the copies in S3-compatible storage.

The offsite modules (boto3, age) are imported by the commands, so other commands start
without them."""

from __future__ import annotations

from backup_pipeline.catalog import history
from backup_pipeline.cli import dagster_run
from backup_pipeline.cli.backups import _require_migrated
from backup_pipeline.cli.output import Result, format_record, format_table
from backup_pipeline.errors import BackupError
from backup_pipeline.offsite import config as offsite_config
from backup_pipeline.offsite.config import OffsiteError
from backup_pipeline.progress import human_bytes
from backup_pipeline.settings import Settings


def register(sub, common) -> None:
    p = sub.add_parser("offsite", parents=[common],
                       help="offsite copies: status, list, push ID, pull KEY")
    actions = p.add_subparsers(dest="offsite_command", metavar="ACTION", required=True)
    q = actions.add_parser("status", parents=[common],
                           help="the target and how many copies are pending, copied, failed")
    q.set_defaults(handler=run_status)
    q = actions.add_parser("list", parents=[common],
                           help="the archives in the bucket (reads the bucket, not the catalog)")
    q.set_defaults(handler=run_list)
    q = actions.add_parser("push", parents=[common], help="copy one backup offsite now (again)")
    q.add_argument("id")
    q.set_defaults(handler=run_push)
    q = actions.add_parser("pull", parents=[common], help="download, decrypt, verify and "
                           "import one copy (as an uploaded, untrusted archive)")
    q.add_argument("key")
    q.set_defaults(handler=run_pull)


def _target():
    from backup_pipeline.offsite import storage

    config = offsite_config.required()
    return config, storage.make_client(config)


def run_status(args) -> Result:
    from backup_pipeline.offsite import service

    settings = Settings.from_env()
    _require_migrated(settings)
    out = service.status(settings, offsite_config.from_env())
    return Result(out, format_record(out))


def run_list(args) -> Result:
    from backup_pipeline.offsite import storage

    config, client = _target()
    try:
        items = storage.list_copies(client, config)
    except storage.STORAGE_ERRORS as exc:
        raise OffsiteError(f"cannot list {config.url}: {storage.describe_error(exc)}") from None
    rows = [{**i, "size": human_bytes(i["size"])} for i in items]
    text = format_table(rows, ["key", "size", "backup_id", "created"])
    return Result({"target": config.url, "items": items, "total": len(items)},
                  f"{text}\n{len(items)} copies in {config.url}")


def run_push(args) -> Result:
    """Through Dagster (offsite_job), so the copy shows in the UI and materializes the asset."""
    from backup_pipeline.offsite import cleanup

    settings = Settings.from_env()
    _require_migrated(settings)
    offsite_config.required()
    backup = history.get(settings.database_url, args.id)
    result = dagster_run.execute(
        "offsite_job", {"ops": {"offsite_catch_up": {"config": {"backup_ids": [backup["id"]]}}}},
        tags={"backup_pipeline/trigger": "cli", "backup_pipeline/backup_id": backup["id"]})
    copy = cleanup.state(settings, backup["id"])
    if not result.success:
        raise BackupError(f"{dagster_run.failure_message(result)} (Dagster run "
                          f"{result.run_id})")
    out = {"backup_id": backup["id"], "dagster_run_id": result.run_id, **(copy or {})}
    return Result(out, f"backup {backup['id']} copied to {copy['key']} "
                       f"({human_bytes(copy['bytes'])})")


def run_pull(args) -> Result:
    from backup_pipeline.offsite.pull import pull

    settings = Settings.from_env()
    _require_migrated(settings)
    config, client = _target()
    record = pull(settings, config, client, args.key)
    return Result(record, f"imported {args.key} as backup {record['id']} "
                          f"({record['file_name']}, {human_bytes(record['size_bytes'])}); "
                          f"restore it with: backup-pipeline restore {record['id']} --yes")
