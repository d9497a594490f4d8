"""What a restore that died in the middle of its swap left in DOCUMENTS_DIR, settled.

Whoever goes next settles it before touching the documents: the next restore, and every backup
(a backup of half-swapped documents beside the database they do not belong to would be a
backup that restores wrongly). One settles at a time: a session advisory lock per database,
taken on the server's maintenance database, serializes them.
"""

from __future__ import annotations

from collections.abc import Callable

from backup_pipeline.postgres import database_name
from backup_pipeline.restore import database, documents
from backup_pipeline.settings import Settings

_SETTLE_LOCK_CLASS = 0x62707364  # 'bpsd'


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
