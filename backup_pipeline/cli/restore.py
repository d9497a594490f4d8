"""`restore ID --preview | --yes`, `restore-status`, `import PATH`."""

from __future__ import annotations

import sys

from backup_pipeline.cli import dagster_run
from backup_pipeline.cli.backups import _require_migrated
from backup_pipeline.cli.output import Result, format_table
from backup_pipeline.errors import ConfigError
from backup_pipeline.progress import Progress, TerminalDisplay, human_bytes
from backup_pipeline.restore import runs
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.settings import Settings


def register(sub, common) -> None:
    p = sub.add_parser("restore", parents=[common],
                       help="preview (--preview) or run (--yes) a restore of a backup")
    p.add_argument("id", help="the backup to restore")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--preview", action="store_true",
                      help="verify the archive and show what would change; changes nothing")
    mode.add_argument("--yes", action="store_true",
                      help="take a safety backup, then replace the database and documents")
    p.add_argument("--scope", choices=runs.SCOPES, default="both",
                   help="what to restore (default: both)")
    p.set_defaults(handler=run_restore)

    p = sub.add_parser("restore-status", parents=[common],
                       help="the latest restore: state, step, times, error, safety backup")
    p.add_argument("--id", help="a particular restore or preview instead of the latest restore")
    p.set_defaults(handler=run_status)

    p = sub.add_parser("import", parents=[common],
                       help="check an archive made elsewhere and add it as type uploaded")
    p.add_argument("path")
    p.add_argument("--note", help="free text kept with the backup")
    p.set_defaults(handler=run_import)


def _show_progress(args) -> bool:
    return not args.json and sys.stdout.isatty()


def run_restore(args) -> Result:
    if not args.preview and not args.yes:
        raise ConfigError("a restore replaces the database and the documents: add --yes to go "
                          "ahead, or --preview to see what it would change")
    settings = Settings.from_env()
    _require_migrated(settings)
    node = "preview_restore" if args.preview else "finish_restore"
    run_config = {"ops": {"start_restore": {"config": {
        "backup_id": args.id, "dry_run": bool(args.preview), "scope": args.scope,
        "trigger": "cli"}}}}
    result = dagster_run.execute("restore_job", run_config,
                                 tags={"backup_pipeline/trigger": "cli"},
                                 show_progress=_show_progress(args))
    if result.success:
        data = result.output_for_node(node)
        data["dagster_run_id"] = result.run_id
        return Result(data, _preview_text(data) if args.preview else _restore_text(data))
    row = runs.find_by_run(settings.database_url, result.run_id)
    if row and row.get("error_message"):
        message = f"restore failed at step {row['step']}: {row['error_message']}"
    else:
        message = dagster_run.failure_message(result)
    raise RestoreError(f"{message} (Dagster run {result.run_id})")


def _preview_text(p: dict) -> str:
    b = p["backup"]
    lines = [f"restore preview of backup {b['id']} ({b['backup_type']}, taken {b['taken_at']}, "
             f"PostgreSQL {b['server_version']}) into {p['live']['database']}, scope "
             f"{p['scope']}; archive verified ({p['verified']['members']} members)", ""]
    lines.append(format_table(p["tables"], ["table", "archive_rows", "live_rows", "change"]))
    lo = p["large_objects"]
    lines.append(f"large objects: {lo['archive']} in the archive, {lo['live']} now")
    lines.append("")
    users = [{**u, "added": f"{u['added']} ({human_bytes(u['added_bytes'])})",
              "removed": f"{u['removed']} ({human_bytes(u['removed_bytes'])})",
              "changed": f"{u['changed']} ({human_bytes(u['changed_bytes'])})"}
             for u in p["documents"]["users"]]
    lines.append(format_table(users, ["user", "added", "removed", "changed", "unchanged"]))
    lines += [""] + [f"warning: {w}" for w in p["warnings"]]
    lines.append("nothing was changed; run again with --yes to restore")
    return "\n".join(lines)


def _restore_text(r: dict) -> str:
    text = (f"restore {r['id']} of backup {r['backup_id']} completed ({r['scope']}); "
            f"safety backup {r['safety_backup_id']}")
    return "\n".join([text] + [f"warning: {w}" for w in r["warnings"]])


def run_status(args) -> Result:
    settings = Settings.from_env()
    if args.id:
        return Result(runs.get(settings.database_url, args.id))
    runs.reap(settings.database_url)
    row = runs.latest(settings.database_url)
    if row is None:
        return Result({"state": None}, "no restore has been run")
    return Result(row)


def run_import(args) -> Result:
    from backup_pipeline.restore import importer  # the archive reader and the backup service

    settings = Settings.from_env()
    _require_migrated(settings)
    progress = Progress()
    display = TerminalDisplay() if _show_progress(args) and sys.stderr.isatty() else None
    if display is not None:
        progress = Progress(interval=0.1, listeners=[display])
    try:
        record = importer.import_archive(settings, args.path, note=args.note, progress=progress)
    finally:
        if display is not None:
            display.close()
    return Result(record, f"imported as backup {record['id']}: {record['file_name']} "
                          f"({human_bytes(record['size_bytes'])}, {record['document_count']} "
                          "documents)")
