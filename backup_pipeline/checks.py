"""Asset checks on `motovaultpro_backup`: what the asset's Checks tab shows.

`restore_drill` is recorded by drill_job (each drill's result, passed or failed) and can also
be executed from the UI. `backup_freshness` is evaluated by `backup_freshness_sensor` (which
records each result as a runless check evaluation) and can also be executed from the UI. The
work is in `backup_pipeline.health` and `backup_pipeline.drills`; this module only translates
to and from Dagster.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus as RecordStatus,  # not exported at dagster's top level
)

from backup_pipeline.drills.service import DrillResult, run_drill
from backup_pipeline.health.alerts import Evaluation
from backup_pipeline.health.freshness import evaluate, grace_from_env
from backup_pipeline.health.report import DrillFacts
from backup_pipeline.ops.backup import BACKUP_ASSET
from backup_pipeline.postgres import connect, one_line
from backup_pipeline.resources.database import DatabaseResource
from backup_pipeline.resources.storage import StorageResource

FRESHNESS_CHECK = "backup_freshness"
DRILL_CHECK = "restore_drill"
FRESHNESS_KEY = dg.AssetCheckKey(BACKUP_ASSET, FRESHNESS_CHECK)
DRILL_KEY = dg.AssetCheckKey(BACKUP_ASSET, DRILL_CHECK)


def _table(evaluation: Evaluation) -> str:
    lines = ["| schedule | frequency | state | newest backup | age (h) | allowed (h) |",
             "|---|---|---|---|---|---|"]
    for s in evaluation.schedules:
        newest = s.last_backup_at.isoformat(timespec="seconds") if s.last_backup_at else "none"
        lines.append(f"| {s.name} | {s.frequency} | {'LATE' if s.late else 'ok'} | {newest} | "
                     f"{s.age_seconds / 3600:.1f} | {s.allowed_seconds / 3600:.1f} |")
    return "\n".join(lines)


def _description(evaluation: Evaluation) -> str:
    late = evaluation.late
    if late:
        return f"late: {', '.join(s.name for s in late)}"
    return f"all {len(evaluation.schedules)} enabled schedules are fresh"


def freshness_metadata(evaluation: Evaluation) -> dict[str, dg.MetadataValue]:
    return {
        "late_schedules": dg.MetadataValue.int(len(evaluation.late)),
        "enabled_schedules": dg.MetadataValue.int(len(evaluation.schedules)),
        "summary": dg.MetadataValue.text(_description(evaluation)),
        "schedules": dg.MetadataValue.md(_table(evaluation)),
    }


def freshness_evaluation(evaluation: Evaluation) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=BACKUP_ASSET, check_name=FRESHNESS_CHECK, passed=not evaluation.late,
        metadata=freshness_metadata(evaluation), severity=dg.AssetCheckSeverity.ERROR,
        description=_description(evaluation))


@dg.asset_check(asset=BACKUP_ASSET, name=FRESHNESS_CHECK, blocking=False,
                description="Every enabled schedule's newest completed backup is younger than "
                "its interval plus FRESHNESS_GRACE (default half an interval). Evaluated every "
                "few minutes by backup_freshness_sensor, which also sends the late and "
                "recovered notifications; executing it here only evaluates.")
def backup_freshness(database: DatabaseResource) -> dg.AssetCheckResult:
    with connect(database.url) as conn:
        evaluation = Evaluation(evaluate(conn, datetime.now(UTC), grace_from_env()))
    return dg.AssetCheckResult(passed=not evaluation.late, metadata=freshness_metadata(evaluation),
                               severity=dg.AssetCheckSeverity.ERROR,
                               description=_description(evaluation))


def drill_metadata(result: DrillResult) -> dict[str, dg.MetadataValue]:
    """What the Checks tab shows of a drill; health and metrics read rto_seconds and backup_id."""
    data = result.as_json()
    return {
        "rto_seconds": dg.MetadataValue.float(round(result.rto_seconds, 3)),
        "backup_id": dg.MetadataValue.text(result.backup_id),
        "drill_id": dg.MetadataValue.text(result.drill_id),
        "tables_checked": dg.MetadataValue.int(data["tables_checked"]),
        "documents_checked": dg.MetadataValue.int(data["documents_checked"]),
        "counts_in_manifest": dg.MetadataValue.bool(data["counts_in_manifest"]),
        "mismatches": dg.MetadataValue.int(len(data["mismatches"])),
        "result": dg.MetadataValue.json(data),
    }


def drill_evaluation(result: DrillResult) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=BACKUP_ASSET, check_name=DRILL_CHECK, passed=result.ok,
        metadata=drill_metadata(result), severity=dg.AssetCheckSeverity.ERROR,
        description=result.description)


@dg.asset_check(asset=BACKUP_ASSET, name=DRILL_CHECK, blocking=False,
                description="Restore drill: the newest completed backup restored into a scratch "
                "database and folder, every table's rows and every document's sha256 compared "
                "with its manifest, the time taken (RTO) recorded, the scratch copies dropped. "
                "Run weekly by restore_drill_schedule (DRILL_CRON) as drill_job, which also "
                "notifies a failure; executing it here only drills.")
def restore_drill_check(database: DatabaseResource, storage: StorageResource
                        ) -> dg.AssetCheckResult:
    result = run_drill(storage.settings(database.url))
    return dg.AssetCheckResult(passed=result.ok, metadata=drill_metadata(result),
                               severity=dg.AssetCheckSeverity.ERROR,
                               description=result.description)


def last_drill(instance: dg.DagsterInstance) -> DrillFacts | None:
    """The newest `restore_drill` evaluation in the instance, or None before the first drill."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        DRILL_KEY, limit=1, status={RecordStatus.SUCCEEDED, RecordStatus.FAILED})
    if not records or records[0].evaluation is None:
        return None
    evaluation = records[0].evaluation
    meta = {k: getattr(v, "value", v) for k, v in (evaluation.metadata or {}).items()}
    rto = meta.get("rto_seconds")
    return DrillFacts(passed=evaluation.passed,
                      at=datetime.fromtimestamp(records[0].create_timestamp, UTC),
                      rto_seconds=float(rto) if isinstance(rto, int | float) else None,
                      backup_id=str(meta["backup_id"]) if meta.get("backup_id") else None,
                      description=evaluation.description)


def drill_from_instance() -> tuple[DrillFacts | None, str | None]:
    """(last drill, problem) from the Dagster instance in DAGSTER_HOME (else ./.local/dagster
    when it exists); (None, None) without an instance or before the first drill."""
    local = Path(".local/dagster").absolute()
    home = os.environ.get("DAGSTER_HOME") or (str(local) if local.is_dir() else "")
    if not home:
        return None, None
    try:
        with dg.DagsterInstance.from_config(home) as instance:
            return last_drill(instance), None
    except Exception as exc:  # health reports what it cannot read; it does not stop there
        return None, f"cannot read the last drill from the Dagster instance: {one_line(exc)}"
