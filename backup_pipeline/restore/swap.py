"""The end of a restore: swap the new database and documents in, then drop the previous ones.

Until the one rename transaction commits, everything is undone on failure; after it only
cleanup is left.
"""

from __future__ import annotations

import os
import shutil
from contextlib import suppress
from pathlib import Path
from typing import Any

from backup_pipeline.backup.service import describe_error
from backup_pipeline.postgres import connect, database_name, with_database
from backup_pipeline.restore import database, documents, roles, runs, siblings
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.plan import RestorePlan, failing
from backup_pipeline.restore.settle import mark_closed
from backup_pipeline.settings import Settings


def swap(settings: Settings, plan: RestorePlan) -> dict[str, Any]:
    """Carry the catalog across, end the other sessions, and swap documents and database in.

    Until the final rename transaction commits, everything is undone on failure."""
    keep: set[str] = set()
    with failing(settings, plan, "swap", keep):
        staged, live_docs = Path(plan.documents_staging), Path(plan.documents_dir)
        if plan.restores_documents:
            documents.prepare_staged_root(staged, live_docs)
            documents.mark(staged, plan.restore_id,
                           plan.old_database if plan.restores_database else None)
            os.sync()  # the staged files are on disk before they become the live tree
        if not plan.restores_database:
            documents.exchange(staged, live_docs)
            return {"sessions_ended": 0, "database": None}
        return _swap_database(settings, plan, staged, live_docs, keep)


def _swap_database(settings: Settings, plan: RestorePlan, staged: Path, live_docs: Path,
                   keep: set[str]) -> dict[str, Any]:
    live = database_name(settings.database_url)
    new_url = with_database(settings.database_url, plan.new_database)
    with database.admin_connect(settings.database_url) as admin, \
            connect(settings.database_url) as lock_conn:
        database.lock_catalog(lock_conn)
        state = lock_conn.execute("SELECT state FROM backup.restore_runs WHERE id = %s",
                                  (plan.restore_id,)).fetchone()
        if state is None or state[0] != "running":  # reaped: a backup may have started since
            raise RestoreError("this restore was marked ended meanwhile (its liveness lock was "
                               "lost); nothing was swapped")
        database.copy_catalog(settings, settings.database_url, new_url, Path(plan.staging_dir))
        siblings.record(new_url, plan.old_database, plan.restore_id)  # live once renamed
        database.hold_swap_lock(admin, live)
        closed = mark_closed(Path(plan.staging_dir), live)
        try:
            database.set_allow_connections(admin, live, False)
            ended = database.end_connections(admin, live, keep=[lock_conn.info.backend_pid])
            lock_conn.close()
            ended += database.end_connections(admin, live)
            had_live_docs = None
            if plan.restores_documents:
                had_live_docs = documents.exchange(staged, live_docs)
            try:
                database.swap_names(admin, live, plan.new_database, plan.old_database)
            except BaseException:
                if had_live_docs is not None:
                    try:
                        documents.undo_exchange(staged, live_docs, had_live_docs)
                    except BaseException as exc:
                        keep.add(plan.documents_staging)
                        raise RestoreError(
                            f"the database swap failed and the previous documents could not be "
                            f"put back ({describe_error(exc)}): they are in {staged}") from exc
                raise
        except BaseException:
            with suppress(Exception):
                database.set_allow_connections(admin, live, True)
                closed.unlink()
            raise
        closed.unlink()  # renamed: the live name is the new, open database
    return {"sessions_ended": ended, "database": live}


def finish(settings: Settings, plan: RestorePlan) -> dict[str, Any]:
    """After the swap: drop the previous database and documents, mark the restore completed.
    A failure here is a warning (the restore itself is done)."""
    warnings: list[str] = []
    with suppress(Exception):
        runs.update(settings.database_url, plan.restore_id, step="cleanup")
    drop_old_database = plan.restores_database
    if plan.restores_documents:
        try:
            # First: while the marker is live, a crash recovery decides by the old database.
            documents.unmark(Path(plan.documents_dir), plan.restore_id)
            if os.path.lexists(plan.documents_staging):
                shutil.rmtree(plan.documents_staging)
        except OSError as exc:
            drop_old_database = False
            warnings.append(f"the previous documents are kept in {plan.documents_staging} "
                            f"({describe_error(exc)}); remove them when no longer needed")
    if drop_old_database:
        try:
            siblings.drop_own(settings.database_url, plan.old_database, plan.restore_id)
            siblings.forget(settings.database_url, [plan.new_database])  # now the live name
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            warnings.append(f"the previous database is kept as {plan.old_database} "
                            f"({describe_error(exc)}); drop it when no longer needed")
    shutil.rmtree(plan.staging_dir, ignore_errors=True)
    if plan.restores_database:
        with suppress(Exception):
            roles.forget_created(settings, plan.restore_id)
    runs.update(settings.database_url, plan.restore_id, state="completed", step="done",
                warnings=warnings)
    return runs.get(settings.database_url, plan.restore_id)
