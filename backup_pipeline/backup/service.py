"""The backup steps, each a plain function; Dagster ops and tests call them in order.

A backup is staged under BACKUP_DIR/.staging/<id>/ and becomes visible only by a no-clobber
link to its final name after it has been fsynced and verified. Any failure removes everything
the backup wrote and marks its history row failed with a one-line reason.

Documents are archived on a thread of their own while pg_dump runs: `start_documents` starts
that thread, `dump` runs pg_dump (stopping early if the documents fail), `finish_documents`
waits for them. The thread belongs to this process, so the steps run in one process, in order
(backup_job uses the in-process executor).
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive import reader
from backup_pipeline.archive.writer import (
    LEVEL_COMPRESS,
    GzipMembers,
    create_private,
    fsync_dir,
    tar_header,
    write_end,
    write_entry_bytes,
)
from backup_pipeline.backup.documents import DocumentCollector, DocumentsResult, read_index
from backup_pipeline.backup.dump import DumpResult, dump_database
from backup_pipeline.catalog import history, liveness
from backup_pipeline.errors import BackupError, BackupPipelineError
from backup_pipeline.postgres import one_line
from backup_pipeline.progress import Progress
from backup_pipeline.restore import runs as restore_runs
from backup_pipeline.restore.errors import RestoreBusyError
from backup_pipeline.restore.settle import (
    forget_stale_closed_marks,
    reopening,
    settle_crashed_documents,
)
from backup_pipeline.settings import ARCHIVE_PREFIX, Settings

STAGING = ".staging"


@dataclass(frozen=True)
class BackupPlan:
    backup_id: str
    backup_type: str
    trigger: str
    started_at: str
    staging_dir: str


@dataclass(frozen=True)
class ArchiveResult:
    path: str
    file_name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DocumentsStarted:
    """Documents being archived by a thread of this process into these staging files."""

    backup_id: str
    segment_path: str
    index_path: str


@dataclass(frozen=True)
class ManifestResult:
    """The manifest and what it describes: all that the archive and the record need."""

    path: str
    dump: DumpResult
    documents: DocumentsResult


_collectors: dict[str, DocumentCollector] = {}
_collectors_lock = threading.Lock()


def describe_error(exc: BaseException) -> str:
    """The one line an operator reads in the catalog, the CLI and the run."""
    if isinstance(exc, BackupPipelineError):
        return str(exc)
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "the backup directory's disk is full (No space left on device)"
        where = f" ({Path(exc.filename).name})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    if isinstance(exc, psycopg.Error):
        return f"database error: {one_line(exc)}"
    if isinstance(exc, KeyboardInterrupt) or type(exc).__name__.endswith("InterruptedError"):
        return "the backup was stopped before it finished"
    return f"{type(exc).__name__}: {one_line(exc)}"


def ensure_private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create backup directory {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise BackupError(f"backup directory {path} is not writable")
    try:
        os.chmod(path, 0o700)
    except OSError as exc:
        raise BackupError(f"cannot make backup directory {path} private (mode 0700): "
                          f"{exc.strerror}") from None


def begin(settings: Settings, *, backup_type: str, trigger: str, schedule_id: str | None = None,
          note: str | None = None, run_id: str | None = None,
          backup_id: str | None = None) -> BackupPlan:
    """Record the backup as in progress, then prepare its private staging directory.

    Refused while a restore runs (its own safety backup excepted): the restore swaps the
    database and documents underneath; restores whose process died are marked failed first.
    What a restore that died mid-swap left is settled first: the live database reopened if it
    was left closed to connections, the documents put in order before they are read. The
    check for a restore and the insert of the row are under the start lock restores take
    too. The backup holds its liveness lock until it ends; backups whose process died
    unfinished are marked failed, and their staging swept."""
    url = settings.database_url

    def refuse() -> None:
        if backup_type != "safety":
            restore_runs.refuse_during_restore(url, f"a {backup_type} backup")

    if backup_type != "safety":
        def check_restores() -> None:
            restore_runs.reap(url)
            refuse()

        reopening(settings, check_restores)
        forget_stale_closed_marks(settings)
        try:
            settle_crashed_documents(settings, check=refuse)
        except RestoreBusyError:
            raise
        except Exception as exc:
            raise BackupError(f"what a restore that died during its swap left in "
                              f"{settings.documents_dir} could not be settled "
                              f"({describe_error(exc)}); see README, Restore") from exc
    backup_id = backup_id or str(uuid.uuid4())
    liveness.hold(url, backup_id)  # before the row: never seen unheld
    try:
        with liveness.starting(url):
            refuse()
            row = history.create(url, backup_type=backup_type, trigger=trigger,
                                 schedule_id=schedule_id, note=note, dagster_run_id=run_id,
                                 backup_id=backup_id)
    except BaseException:
        liveness.release(backup_id)
        raise
    plan = BackupPlan(row["id"], backup_type, trigger, row["started_at"],
                      str(settings.backup_dir / STAGING / row["id"]))
    with failing(settings, plan):
        ensure_private_dir(settings.backup_dir)
        ensure_private_dir(settings.backup_dir / STAGING)
        history.reap_abandoned(settings.database_url, keep=plan.backup_id,
                               backup_dir=settings.backup_dir)
        sweep_stale_staging(settings, keep=plan.backup_id)
        try:
            os.mkdir(plan.staging_dir, 0o700)
        except OSError as exc:
            raise BackupError(f"cannot write to backup directory {settings.backup_dir}: "
                              f"{exc.strerror}") from None
    return plan


def sweep_stale_staging(settings: Settings, keep: str) -> None:
    """Remove what crashed backups left behind (their rows are no longer in progress)."""
    root = settings.backup_dir / STAGING
    for entry in root.iterdir():
        if entry.name == keep:
            continue
        try:
            row = history.get(settings.database_url, entry.name)
        except BackupPipelineError:
            row = None
        if row is None or row["status"] != "in_progress":
            shutil.rmtree(entry, ignore_errors=True)


def _stop_collector(backup_id: str) -> None:
    with _collectors_lock:
        collector = _collectors.pop(backup_id, None)
    if collector is not None:
        collector.stop()


def discard(plan: BackupPlan, *paths: str | None) -> None:
    _stop_collector(plan.backup_id)
    shutil.rmtree(plan.staging_dir, ignore_errors=True)
    for path in paths:
        if path:
            Path(path).unlink(missing_ok=True)


def give_up(settings: Settings, plan: BackupPlan, reason: str, *paths: str | None) -> None:
    """End the backup as failed for `reason`, removing what it made."""
    discard(plan, *paths)
    history.fail(settings.database_url, plan.backup_id, reason)
    liveness.release(plan.backup_id)


@contextmanager
def failing(settings: Settings, plan: BackupPlan, *remove: str | None) -> Iterator[None]:
    """On any failure: remove the staging dir (and `remove`), mark the row failed, re-raise
    as a one-line BackupError (interrupts stay interrupts)."""
    try:
        yield
    except BaseException as exc:
        message = describe_error(exc)
        discard(plan, *remove)
        with suppress(Exception):  # the catalog may be the thing that failed
            history.fail(settings.database_url, plan.backup_id, message)
        liveness.release(plan.backup_id)
        if isinstance(exc, Exception) and not isinstance(exc, BackupError):
            raise BackupError(message) from exc
        raise


def require_staging(plan: BackupPlan) -> Path:
    """Steps that do not depend on each other run on after one fails; they stop here."""
    staging = Path(plan.staging_dir)
    if not staging.is_dir():
        raise BackupError(f"backup {plan.backup_id} was abandoned: an earlier step failed")
    return staging


def start_documents(settings: Settings, plan: BackupPlan) -> DocumentsStarted:
    """Start archiving the documents on a thread; `finish_documents` waits for it."""
    with failing(settings, plan):
        collector = DocumentCollector(settings.documents_dir, require_staging(plan),
                                      settings.compression)
        with _collectors_lock:
            _collectors[plan.backup_id] = collector
        collector.start()
        return DocumentsStarted(plan.backup_id, str(collector.staging / "documents.segment"),
                                str(collector.staging / "documents.jsonl"))


def _collector(plan: BackupPlan) -> DocumentCollector:
    with _collectors_lock:
        collector = _collectors.get(plan.backup_id)
    if collector is None:
        raise BackupError(f"the documents of backup {plan.backup_id} are not being archived in "
                          "this process; run the whole backup again")
    return collector


def dump(settings: Settings, plan: BackupPlan, progress: Progress | None = None) -> DumpResult:
    """pg_dump, while the documents (if started) are archived; their failure stops it."""
    with failing(settings, plan):
        with _collectors_lock:
            collector = _collectors.get(plan.backup_id)

        def check() -> None:
            if progress is not None:
                progress.documents = collector.progress.documents
            collector.check()

        return dump_database(settings, require_staging(plan), progress,
                             check if collector is not None else None)


def finish_documents(settings: Settings, plan: BackupPlan) -> DocumentsResult:
    with failing(settings, plan):
        result = _collector(plan).wait()
        with _collectors_lock:
            _collectors.pop(plan.backup_id, None)
        return result


def write_manifest(settings: Settings, plan: BackupPlan, dump_result: DumpResult,
                   docs: DocumentsResult) -> str:
    with failing(settings, plan):
        members = [{"path": mf.DUMP_MEMBER, "size": dump_result.size,
                    "sha256": dump_result.sha256}]
        members.extend(read_index(Path(docs.index_path)))
        manifest = mf.build(
            backup_id=plan.backup_id, backup_type=plan.backup_type, trigger=plan.trigger,
            started_at=datetime.fromisoformat(plan.started_at),
            source={"database": dump_result.database,
                    "server_version": dump_result.server_version,
                    "pg_dump_version": dump_result.pg_dump_version,
                    "sql_bytes": dump_result.sql_bytes},
            members=members, contents=dump_result.contents,
        )
        path = require_staging(plan) / mf.MANIFEST_NAME
        with create_private(path) as f:
            f.write(mf.encode(manifest))
        return str(path)


def archive_name(started_at: str) -> str:
    stamp = datetime.fromisoformat(started_at).strftime("%Y%m%d_%H%M%S")
    return f"{ARCHIVE_PREFIX}{stamp}.tar.gz"


def _publish(temp: Path, backup_dir: Path, name: str, taken: set[str] = frozenset(),
             intend: Callable[[str], bool] | None = None) -> Path:
    """Link temp to a free final name (never replacing a file, never a name the catalog still
    records for an archive removed by hand); suffix _2, _3... on clashes. `intend(name)` runs
    before each link: it records the name (so a process killed after the link leaves a file
    that its row names), or says the catalog has it already."""
    stem = name.removesuffix(".tar.gz")
    for n in range(1, 1000):
        final = backup_dir / (name if n == 1 else f"{stem}_{n}.tar.gz")
        if final.name in taken or (intend is not None and not intend(final.name)):
            continue
        try:
            os.link(temp, final)
            return final
        except FileExistsError:
            continue
    raise BackupError(f"no free archive name for {name}")


def intending(database_url: str, backup_id: str, sha256: str) -> Callable[[str], bool]:
    """`_publish`'s intend: the row records the archive's name and sha256 before the link."""
    return lambda file_name: history.intend_file(database_url, backup_id, file_name, sha256)


def _publish_synced(settings: Settings, plan: BackupPlan, temp: Path, sha256: str) -> Path:
    final: Path | None = None
    try:
        with failing(settings, plan):
            name = archive_name(plan.started_at)
            taken = history.file_names_like(settings.database_url,
                                            name.removesuffix(".tar.gz"))
            final = _publish(temp, settings.backup_dir, name, taken,
                             intending(settings.database_url, plan.backup_id, sha256))
            fsync_dir(settings.backup_dir)
            return final
    except BaseException:
        if final is not None:
            final.unlink(missing_ok=True)
        raise


def assemble(settings: Settings, plan: BackupPlan, manifest_path: str, dump_result: DumpResult,
             docs: DocumentsResult, progress: Progress | None = None) -> ArchiveResult:
    """Write the archive under a temporary name, fsync it, verify it, then publish it.

    The dump entry and the documents are already gzip members in staging: they are appended
    by the kernel after the manifest. Verification (which also gives the file's sha256) runs
    while the archive is fsynced on another thread.
    """
    progress = progress or Progress()
    with failing(settings, plan):
        temp = require_staging(plan) / "archive.tar.gz.partial"
        progress.set_phase("writing archive")
        with create_private(temp, buffering=0) as out:
            gz = GzipMembers(out, settings.compression)
            write_entry_bytes(gz, mf.MANIFEST_NAME, Path(manifest_path).read_bytes(),
                              LEVEL_COMPRESS)
            gz.write(tar_header(mf.DUMP_MEMBER, dump_result.size), LEVEL_COMPRESS)
            gz.append_file(Path(dump_result.path), dump_result.tar_bytes)
            gz.append_file(Path(docs.segment_path), docs.tar_bytes)
            write_end(gz)
            size = out.tell()
            with ThreadPoolExecutor(1, thread_name_prefix="fsync-archive") as pool:
                synced = pool.submit(os.fsync, out.fileno())
                progress.set_phase("verifying archive")
                sha256 = reader.verify(temp, on_bytes=progress.add_bytes).sha256
                synced.result()
    final = _publish_synced(settings, plan, temp, sha256)
    discard(plan)
    return ArchiveResult(str(final), final.name, size, sha256)


def record(settings: Settings, plan: BackupPlan, dump_result: DumpResult, docs: DocumentsResult,
           archive: ArchiveResult) -> dict[str, Any]:
    with failing(settings, plan, archive.path):
        row = history.complete(
            settings.database_url, plan.backup_id, file_name=archive.file_name,
            size_bytes=archive.size, sha256=archive.sha256, database_bytes=dump_result.size,
            document_count=docs.count, documents_bytes=docs.bytes,
            format_version=mf.FORMAT_VERSION, server_version=dump_result.server_version,
            pg_dump_version=dump_result.pg_dump_version,
        )
    liveness.release(plan.backup_id)
    return row


def run_backup(settings: Settings, *, backup_type: str = "manual", trigger: str = "direct",
               note: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The whole backup without Dagster: for tests and for measuring Dagster's overhead."""
    plan = begin(settings, backup_type=backup_type, trigger=trigger, note=note)
    start_documents(settings, plan)
    dump_result = dump(settings, plan, progress)
    docs = finish_documents(settings, plan)
    manifest_path = write_manifest(settings, plan, dump_result, docs)
    archive = assemble(settings, plan, manifest_path, dump_result, docs, progress)
    return record(settings, plan, dump_result, docs, archive)
