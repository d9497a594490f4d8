"""The restore steps, each a plain function; restore_job's ops and the tests call them in order.

claim -> verify (and stage) -> preview (dry run, then done)
                             -> safety_backup -> load_database -> swap -> finish

Everything before `swap` works beside the live system (a staging folder, a new database); `swap`
ends with the one rename transaction that makes the restore real, after which only cleanup is
left. Any failure before that drops what was staged, leaves database and documents as they
were, and records the step and the reason in `backup.restore_runs`.

The steps live by phase in claim, load and swap; this module is where callers find them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backup_pipeline.catalog import history
from backup_pipeline.progress import Progress
from backup_pipeline.restore import preview, runs
from backup_pipeline.restore.claim import claim
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.load import BackgroundLoad, load_database, verify
from backup_pipeline.restore.plan import RestorePlan, cleanup, failing
from backup_pipeline.restore.settle import RESTORE_STAGING
from backup_pipeline.restore.swap import finish, swap
from backup_pipeline.restore.verify import CheckedArchive
from backup_pipeline.settings import Settings

__all__ = ["RESTORE_STAGING", "BackgroundLoad", "RestorePlan", "claim", "cleanup", "failing",
           "finish", "load_database", "make_preview", "run_restore", "safety_backup", "swap",
           "verify"]


def make_preview(settings: Settings, plan: RestorePlan, checked: CheckedArchive
                 ) -> dict[str, Any]:
    """What the restore would change; a dry run ends here, completed."""
    with failing(settings, plan, "preview"):
        backup = history.get(settings.database_url, plan.backup_id)
        result = preview.build(settings, restore_id=plan.restore_id, backup=backup,
                               scope=plan.scope, checked=checked)
        if plan.dry_run:
            runs.update(settings.database_url, plan.restore_id, state="completed", step="done",
                        preview=result, warnings=result["warnings"])
        return result


def safety_backup(settings: Settings, plan: RestorePlan,
                  make_backup: Callable[[], dict[str, Any]]) -> str:
    """Take the safety backup (`make_backup` runs backup_job, or the backup steps directly)."""
    with failing(settings, plan, "safety_backup"):
        row = make_backup()
        if row.get("backup_type") != "safety" or row.get("status") != "completed":
            raise RestoreError(f"the safety backup did not complete (backup {row.get('id')}, "
                               f"status {row.get('status')})")
        runs.update(settings.database_url, plan.restore_id, safety_backup_id=row["id"])
        return row["id"]


def run_restore(settings: Settings, backup_id: str, *, dry_run: bool = True,
                scope: str = "both", make_safety_backup: Callable[[], dict] | None = None,
                progress: Progress | None = None) -> dict[str, Any]:
    """The whole restore without Dagster (tests, benchmarks): the preview for a dry run, the
    completed restore record otherwise."""
    plan = claim(settings, backup_id, dry_run=dry_run, scope=scope)
    checked = verify(settings, plan, progress)
    if dry_run:
        return make_preview(settings, plan, checked)
    if make_safety_backup is None:
        from backup_pipeline.backup.service import run_backup

        def make_safety_backup() -> dict:
            return run_backup(settings, backup_type="safety", trigger="restore",
                              note=f"before restore {plan.restore_id}")
    safety_backup(settings, plan, make_safety_backup)
    load_database(settings, plan, checked, progress)
    swap(settings, plan)
    return finish(settings, plan)
