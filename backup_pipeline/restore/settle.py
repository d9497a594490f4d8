"""What a restore that died in the middle of its swap left, settled by whoever goes next.

- The live database closed to new connections (the restore died between closing it and the
  rename): reopened by the next backup or restore that finds it refusing connections, if the
  restore's staging holds the mark it writes before closing it (so a database an operator
  closed on purpose stays closed) and nobody holds the swap lock.
- Half-swapped documents: settled before the next restore, and every backup, touches them (a
  backup of restored documents beside the database they do not belong to would restore
  wrongly). One settles at a time: a session advisory lock per database, taken on the
  server's maintenance database, serializes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

from backup_pipeline.archive.writer import create_private, fsync_dir
from backup_pipeline.errors import NotFoundError, UnavailableError
from backup_pipeline.postgres import connect, database_name
from backup_pipeline.restore import database, documents, runs
from backup_pipeline.settings import Settings

_SETTLE_LOCK_CLASS = 0x62707364  # 'bpsd'
RESTORE_STAGING = ".restore"  # BACKUP_DIR/.restore/<restore id>/: a restore's own files
CLOSED_MARK = "closed-live-database"
_REFUSING = "is not currently accepting connections"
T = TypeVar("T")


def mark_closed(staging_dir: Path, live: str) -> Path:
    """Written (and on disk) before a restore closes the live database to new connections."""
    mark = Path(staging_dir) / CLOSED_MARK
    with create_private(mark) as f:
        f.write(live.encode())
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(mark.parent)
    return mark


def reopen_after_crashed_swap(settings: Settings) -> bool:
    """Reopen the live database if a restore that died left it closed (see the module)."""
    live = database_name(settings.database_url)
    marks = [m for m in _closed_marks(settings) if _read(m) == live]
    if not marks:
        return False
    with database.admin_connect(settings.database_url) as admin:
        reopened = database.reopen_unless_swapping(admin, live)
    if reopened:
        for mark in marks:
            mark.unlink(missing_ok=True)
    return reopened


def forget_stale_closed_marks(settings: Settings) -> None:
    """Remove the marks of restores that are over while the live database is open (reopened
    by hand, say), so a later closing by an operator is never taken for a crashed swap."""
    for mark in _closed_marks(settings):
        try:
            active = runs.get(settings.database_url, mark.parent.name)["state"] in \
                ("pending", "running")
        except NotFoundError:
            active = False
        if not active:
            mark.unlink(missing_ok=True)


def _closed_marks(settings: Settings) -> list[Path]:
    root = settings.backup_dir / RESTORE_STAGING
    return sorted(root.glob(f"*/{CLOSED_MARK}")) if root.is_dir() else []


def _read(mark: Path) -> str | None:
    with suppress(OSError, UnicodeDecodeError):
        return mark.read_text()
    return None


def ensure_open(settings: Settings) -> None:
    """Reopen the live database now if a crashed swap left it closed (for callers whose first
    use of it is not theirs to retry, such as a scheduled backup's slot claim)."""
    reopening(settings, lambda: connect(settings.database_url).close())


def reopening(settings: Settings, call: Callable[[], T]) -> T:
    """`call()`, and once more if the live database refused the connection because a restore
    died between closing it and its rename, after reopening it."""
    try:
        return call()
    except UnavailableError as exc:
        if _REFUSING not in str(exc) or not reopen_after_crashed_swap(settings):
            raise
    return call()


def settle_crashed_documents(settings: Settings, keep: str | None = None,
                             check: Callable[[], None] | None = None) -> list[str]:
    """Finish or undo the documents side of restores (other than `keep`) that crashed; the
    caller knows no other restore runs: it holds the restore slot, or `check` (run once the
    lock is held, before anything is touched) raises if one has started meanwhile. A restore
    stages documents only after its own settling, which waits for this one."""
    docs = settings.documents_dir.resolve()
    done: list[str] = []
    if not documents.leftovers(docs, keep=keep):
        return done  # the usual case, without a connection
    with database.admin_connect(settings.database_url) as admin:
        admin.execute("SELECT pg_advisory_lock(%s, hashtext(%s))",
                      (_SETTLE_LOCK_CLASS, database_name(settings.database_url)))
        if check is not None:
            check()
        for staged in documents.leftovers(docs, keep=keep):
            outcome = documents.recover(staged, docs, lambda name: database.exists(admin, name))
            done.append(f"{staged.name}: {outcome}")
    return done
