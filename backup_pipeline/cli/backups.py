"""`backup`, `list`, `show`, `verify`, `delete`.

backup_pipeline.backup.inventory (boto3, through the offsite cleanup) and Dagster are imported
by the commands that use them, so `backup-pipeline list` starts without them."""

from __future__ import annotations

import sys
from contextlib import suppress

from backup_pipeline.catalog import history
from backup_pipeline.catalog.migrate import pending
from backup_pipeline.cli import dagster_run
from backup_pipeline.cli.output import Result, format_table
from backup_pipeline.errors import BackupError, ConfigError
from backup_pipeline.progress import human_bytes
from backup_pipeline.settings import Settings


def register(sub, common) -> None:
    p = sub.add_parser("backup", parents=[common], help="make one manual backup (a Dagster run)")
    p.add_argument("--note", help="free text kept with the backup")
    p.set_defaults(handler=run_backup)

    p = sub.add_parser("list", parents=[common], help="list backups, newest first")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.add_argument("--type", choices=history.BACKUP_TYPES)
    p.add_argument("--status", choices=history.STATUSES)
    p.set_defaults(handler=run_list)

    p = sub.add_parser("show", parents=[common], help="one backup with its manifest summary")
    p.add_argument("id")
    p.set_defaults(handler=run_show)

    p = sub.add_parser("verify", parents=[common],
                       help="check an archive's manifest, sizes and sha256 (by id or path)")
    p.add_argument("id_or_path")
    p.set_defaults(handler=run_verify)

    p = sub.add_parser("delete", parents=[common], help="remove a backup's archive and record")
    p.add_argument("id")
    p.set_defaults(handler=run_delete)


def _require_migrated(settings: Settings) -> None:
    missing = pending(settings.database_url)
    if missing:
        raise ConfigError(f"the catalog needs migrations {', '.join(missing)}: "
                          "run 'backup-pipeline migrate' first")


def run_backup(args) -> Result:
    settings = Settings.from_env()
    _require_migrated(settings)
    run_config = {"ops": {"start_backup": {"config": {
        "backup_type": "manual", "trigger": "cli", "note": args.note}}}}
    result = dagster_run.execute("backup_job", run_config, tags={"backup_pipeline/trigger": "cli"},
                                 show_progress=not args.json and sys.stdout.isatty())
    if result.success:
        record = result.output_for_node("record_backup")
        record["dagster_run_id"] = result.run_id
        return Result(record, _backup_text(record))
    row = history.find_by_run(settings.database_url, result.run_id)
    message = (row or {}).get("error_message") or dagster_run.failure_message(result)
    raise BackupError(f"backup failed: {message} (Dagster run {result.run_id})")


def _backup_text(r: dict) -> str:
    return (f"backup {r['id']} completed: {r['file_name']} ({human_bytes(r['size_bytes'])}, "
            f"database {human_bytes(r['database_bytes'])}, {r['document_count']} documents, "
            f"{r['duration_seconds']:.1f}s)")


def run_list(args) -> Result:
    settings = Settings.from_env()
    page = history.list_page(settings.database_url, page=args.page, page_size=args.page_size,
                             backup_type=args.type, status=args.status)
    rows = [{**r, "size": human_bytes(r["size_bytes"]) if r["size_bytes"] else ""}
            for r in page["items"]]
    text = format_table(rows, ["id", "backup_type", "status", "started_at", "size", "file_name"])
    text += f"\n{page['total']} backups, page {page['page']} (page size {page['page_size']})"
    return Result(page, text)


def run_show(args) -> Result:
    from backup_pipeline.backup import inventory

    return Result(inventory.show(Settings.from_env(), args.id))


def run_verify(args) -> Result:
    from backup_pipeline.backup import inventory

    settings = None
    with suppress(ConfigError):  # verifying a file by path needs no database
        settings = Settings.from_env()
    report = inventory.verify(settings, args.id_or_path)
    return Result(report, f"{report['file_name']}: OK ({report['members']} members, "
                          f"{human_bytes(report['bytes_checked'])} checked)")


def run_delete(args) -> Result:
    from backup_pipeline.backup import inventory

    out = inventory.delete(Settings.from_env(), args.id)
    return Result(out, f"deleted backup {out['deleted']} ({out['file_name'] or 'no file'})")
