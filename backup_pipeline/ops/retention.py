"""Retention ops: after each scheduled backup (its schedule), and the global sweep of
retention_job. The rules are in backup_pipeline.scheduling.retention."""

import dagster as dg
from pydantic import Field

from backup_pipeline.postgres import one_line
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.resources.storage import StorageResource
from backup_pipeline.scheduling import retention


class RetentionConfig(dg.Config):
    dry_run: bool = Field(default=False, description="Only report what would be deleted.")
    schedule_id: str | None = Field(default=None, description="Only this schedule (default: "
                                    "every schedule, and the whole BACKUP_DIR is checked).")


def _table(rows: list[dict], columns: list[str]) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("(none)")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


def report_metadata(report: retention.RetentionReport) -> dict:
    kept = [{"schedule": p.name, "retention": p.retention_count, "kept": len(p.keep),
             "protected_by_restore": len(p.protected), "missing_files": len(p.missing)}
            for p in report.schedules]
    return {
        **{k: dg.MetadataValue.int(v) for k, v in report.summary().items()
           if not isinstance(v, bool)},
        "dry_run": dg.MetadataValue.bool(report.dry_run),
        "per_schedule_table": _table(kept, ["schedule", "retention", "kept", "protected_by_restore",
                                      "missing_files"]),
        "deleted_table": _table(report.deleted, ["schedule", "file_name", "started_at",
                                                   "size_bytes", "file_removed"]),
        "would_delete_table": _table([{**r, "schedule": p.name} for p in report.schedules
                                for r in p.delete] if report.dry_run else [],
                               ["schedule", "file_name", "started_at", "size_bytes"]),
        "protected_by_restore_table": _table([{**r, "schedule": p.name} for p in report.schedules
                                        for r in p.protected], ["schedule", "id", "file_name"]),
        "missing_files_table": _table(report.missing_files,
                                ["id", "backup_type", "file_name", "started_at"]),
        "unknown_files_table": _table([{"file_name": n} for n in report.unknown_files],
                                ["file_name"]),
        "error_list": dg.MetadataValue.text("\n".join(report.errors)),
    }


def _log_findings(context: dg.OpExecutionContext, report: retention.RetentionReport) -> None:
    for row in report.missing_files:
        context.log.warning(f"backup {row['id']} ({row['backup_type']}) is completed but its "
                            f"archive {row['file_name']} is missing on disk")
    for name in report.unknown_files:
        context.log.warning(f"{name} in BACKUP_DIR has no catalog row (not deleted)")
    for error in report.errors:
        context.log.error(error)
    for row in report.deleted:
        context.log.info(f"retention deleted {row['file_name']} of schedule {row['schedule']}")


@dg.op(description="Apply the schedule's retention after a scheduled backup completed. A "
       "problem here is a warning: the backup itself succeeded, and retention_job sweeps daily.")
def schedule_retention(
    context: dg.OpExecutionContext, backup: dict, database: DatabaseResource,
    storage: StorageResource,
) -> dict:
    if backup.get("backup_type") != "scheduled" or not backup.get("schedule_id"):
        context.add_output_metadata({"applied": False, "why": "not a scheduled backup"})
        return {"applied": False}
    try:
        report = retention.apply(storage.settings(database.url), backup["schedule_id"])
    except Exception as exc:
        context.log.warning(f"retention after this backup failed: {one_line(exc)}")
        context.add_output_metadata({"applied": False, "error": one_line(exc)})
        return {"applied": False, "error": one_line(exc)}
    _log_findings(context, report)
    context.add_output_metadata({"applied": True, **report_metadata(report)})
    return {"applied": True, **report.summary()}


@dg.op(description="Every schedule's retention; reports completed backups whose archive is "
       "missing and files in BACKUP_DIR without a catalog row (never deleting those).")
def retention_sweep(
    context: dg.OpExecutionContext, config: RetentionConfig, database: DatabaseResource,
    storage: StorageResource,
) -> dict:
    report = retention.apply(storage.settings(database.url), config.schedule_id,
                             dry_run=config.dry_run)
    _log_findings(context, report)
    metadata = report_metadata(report)
    if report.errors:
        raise dg.Failure(description=f"retention could not delete {len(report.errors)} "
                         f"backup(s): {report.errors[0]}", metadata=metadata)
    context.add_output_metadata(metadata)
    return report.as_dict()
