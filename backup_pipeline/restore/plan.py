"""What every restore step shares: the plan, the cleanup and the failure handling.

Work a step starts in the background (the early database load) is kept in a registry of this
process, keyed by restore id, so that any later step that fails can stop it first.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from backup_pipeline.backup.service import describe_error
from backup_pipeline.postgres import database_name
from backup_pipeline.restore import database, documents, roles, runs, siblings
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.settle import RESTORE_STAGING
from backup_pipeline.settings import Settings


@dataclass(frozen=True)
class RestorePlan:
    restore_id: str
    backup_id: str
    archive_path: str
    archive_sha256: str | None
    backup_type: str
    dry_run: bool
    scope: str
    staging_dir: str
    documents_dir: str
    documents_staging: str
    new_database: str
    old_database: str

    @property
    def restores_database(self) -> bool:
        return self.scope in ("database", "both")

    @property
    def restores_documents(self) -> bool:
        return self.scope in ("documents", "both")

    @property
    def trusted(self) -> bool:
        """Archives made here (uploads are not)."""
        return self.backup_type != "uploaded"

    @property
    def loader_role(self) -> str:
        """The temporary role that loads an untrusted archive (see restore.roles)."""
        return roles.LOADER_PREFIX + self.restore_id.replace("-", "")


def make_plan(settings: Settings, row: dict[str, Any], backup: dict[str, Any], path: Path
              ) -> RestorePlan:
    live = database_name(settings.database_url)
    docs = settings.documents_dir.resolve()  # a symlinked DOCUMENTS_DIR keeps its link
    return RestorePlan(
        restore_id=row["id"], backup_id=backup["id"], archive_path=str(path),
        archive_sha256=backup.get("sha256"), backup_type=backup["backup_type"],
        dry_run=row["dry_run"], scope=row["scope"],
        staging_dir=str(settings.backup_dir / RESTORE_STAGING / row["id"]),
        documents_dir=str(docs), documents_staging=str(documents.staging_path(docs, row["id"])),
        new_database=database.sibling_name(live, "restore", row["id"]),
        old_database=database.sibling_name(live, "old", row["id"]),
    )


class Stoppable(Protocol):
    def stop(self) -> None: ...


_background: dict[str, Stoppable] = {}
_background_lock = threading.Lock()


def keep_background(restore_id: str, work: Stoppable) -> None:
    with _background_lock:
        _background[restore_id] = work


def take_background(restore_id: str) -> Stoppable | None:
    with _background_lock:
        return _background.pop(restore_id, None)


def stop_background(restore_id: str) -> None:
    work = take_background(restore_id)
    if work is not None:
        work.stop()


def cleanup(settings: Settings, plan: RestorePlan, keep: set[str] | None = None) -> None:
    """Drop what this restore staged; never touches the live database or documents."""
    if plan.dry_run:
        return  # a preview stages nothing
    keep = keep or set()
    if plan.restores_database:
        with suppress(Exception):  # only if this restore recorded it: it made it
            siblings.drop_own(settings.database_url, plan.new_database, plan.restore_id)
        with suppress(Exception):
            roles.drop_for_restore(settings, plan.restore_id)
    if plan.documents_staging not in keep:
        shutil.rmtree(plan.documents_staging, ignore_errors=True)
    shutil.rmtree(plan.staging_dir, ignore_errors=True)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt) or type(exc).__name__.endswith("InterruptedError"):
        return "the restore was stopped before it finished"
    return describe_error(exc)


@contextmanager
def failing(settings: Settings, plan: RestorePlan, step: str, keep: set[str] | None = None
            ) -> Iterator[None]:
    """Record `step`; on any failure clean up, mark the restore failed (step and reason) and
    re-raise as a one-line RestoreError (interrupts stay interrupts)."""
    try:
        runs.update(settings.database_url, plan.restore_id, step=step)
        yield
    except BaseException as exc:
        message = _message(exc)
        stop_background(plan.restore_id)  # before cleanup drops what it is writing to
        cleanup(settings, plan, keep)
        runs.fail(settings.database_url, plan.restore_id, message)
        if isinstance(exc, Exception):
            raise RestoreError(f"restore failed at step {step}: {message}") from exc
        raise
