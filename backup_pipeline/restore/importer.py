"""`import PATH`: an archive made elsewhere joins the catalog as type `uploaded`, if it passes.

The same check serves the upload endpoint. The file is first copied into a private staging
folder (so what is checked is what is kept; the upload's own quarantine file is moved there
instead, written once), fsynced, then checked completely like a restore checks it
(gzip, tar, manifest, names and member types, sizes and sha256, complete dump, bounded SQL,
no psql meta-commands), and only then linked into BACKUP_DIR with a catalog row. A rejected
archive leaves no file and no row.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive.reader import sha256_file
from backup_pipeline.archive.writer import CHUNK, create_private, fsync_dir
from backup_pipeline.backup.service import _publish, archive_name, ensure_private_dir, intending
from backup_pipeline.catalog import history, liveness
from backup_pipeline.errors import NotFoundError
from backup_pipeline.postgres import connect
from backup_pipeline.progress import Progress
from backup_pipeline.restore import runs
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.preview import SPACE_MARGIN, free_bytes
from backup_pipeline.restore.verify import CheckedArchive, check_archive
from backup_pipeline.settings import DEFAULT_RESTORE_MAX_BYTES, Settings

IMPORT_STAGING = ".import"
_RECORD_LOCK = 0x6270696D706F7274  # 'bpimport': imports check and record one at a time


def _copy(source: Path, target: Path, progress: Progress) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as src, create_private(target) as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            progress.add_bytes(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _take(source: Path, target: Path, progress: Progress) -> str:
    """Move a private file of ours (the upload's quarantine file) into staging instead of
    copying it; a copy when it is on another filesystem."""
    try:
        os.rename(source, target)
    except OSError:
        return _copy(source, target, progress)
    with open(target, "rb") as f:
        os.fsync(f.fileno())
    return sha256_file(target, on_bytes=progress.add_bytes)


def validate(path: Path, progress: Progress | None = None,
             max_bytes: int = DEFAULT_RESTORE_MAX_BYTES) -> CheckedArchive:
    """The complete check of an archive from elsewhere; raises ArchiveError naming the problem
    (one that declares more than `max_bytes` of data is refused before it is unpacked)."""
    progress = progress or Progress()
    progress.set_phase("checking archive")
    # an import is restored as an upload: psql always runs restricted (restore.load)
    return check_archive(Path(path), on_bytes=progress.add_bytes, max_bytes=max_bytes,
                         restricted_load=True)


@contextmanager
def _one_at_a_time(database_url: str) -> Iterator[None]:
    """Imports look for a duplicate and record theirs under one lock, so two imports of one
    archive cannot both find none (the lock goes with the session, however the process ends)."""
    with connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_RECORD_LOCK,))
        yield


def _refuse_duplicate(database_url: str, manifest: dict[str, Any], sha256: str) -> None:
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT id::text, file_name FROM backup.backup_history"
            " WHERE sha256 = %s OR id::text = %s LIMIT 1",
            (sha256, str(manifest.get("backup_id")))).fetchone()
    if row is not None:
        raise RestoreError(f"this archive is already in the catalog as backup {row[0]} "
                           f"({row[1]})")


def import_archive(settings: Settings, source: Path, *, note: str | None = None,
                   progress: Progress | None = None, trigger: str = "import",
                   take: bool = False) -> dict[str, Any]:
    """Validate an archive made elsewhere and add it as type `uploaded`; returns its record.
    `trigger` says who asked (`import` from the CLI, `upload` from the admin API). With
    `take`, `source` is a private file of ours, moved into staging rather than copied (once
    taken, it is gone whatever the outcome; a refusal before that leaves it to the caller)."""
    progress = progress or Progress()
    source = Path(source)
    if not source.is_file():
        raise NotFoundError(f"no archive at {source}")
    history.require_catalog(settings.database_url)
    runs.refuse_during_restore(settings.database_url, "an import")
    size = source.stat().st_size
    ensure_private_dir(settings.backup_dir)
    ensure_private_dir(settings.backup_dir / IMPORT_STAGING)
    if size + SPACE_MARGIN > free_bytes(settings.backup_dir):
        raise RestoreError(f"not enough disk space in {settings.backup_dir} for a "
                           f"{size}-byte archive")
    staging = Path(tempfile.mkdtemp(dir=settings.backup_dir / IMPORT_STAGING))
    try:
        progress.set_phase("copying archive")
        copy = staging / "archive.tar.gz"
        sha256 = (_take if take else _copy)(source, copy, progress)
        checked = validate(copy, progress, max_bytes=settings.max_unpack_bytes)
        manifest = checked.manifest
        with _one_at_a_time(settings.database_url):
            # an import that died while recording holds no lock: not a duplicate to refuse
            history.reap_abandoned(settings.database_url, backup_dir=settings.backup_dir)
            _refuse_duplicate(settings.database_url, manifest, sha256)
            return _add(settings, copy, sha256, checked, note or
                        f"imported {source.name} (backup {manifest.get('backup_id')} of "
                        f"{manifest.get('started_at')})", trigger)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _add(settings: Settings, copy: Path, sha256: str, checked: CheckedArchive, note: str,
         trigger: str = "import") -> dict[str, Any]:
    backup_id = str(uuid.uuid4())
    liveness.hold(settings.database_url, backup_id)  # in progress for a moment: not abandoned
    try:
        return _record(settings, backup_id, copy, sha256, checked, note, trigger)
    finally:
        liveness.release(backup_id)


def _record(settings: Settings, backup_id: str, copy: Path, sha256: str, checked: CheckedArchive,
            note: str, trigger: str) -> dict[str, Any]:
    manifest = checked.manifest
    source = manifest.get("source") or {}
    row = history.create(settings.database_url, backup_type="uploaded", trigger=trigger,
                         note=note[:500], backup_id=backup_id)
    final: Path | None = None
    try:
        final = _publish(copy, settings.backup_dir, archive_name(row["started_at"]),
                         intend=intending(settings.database_url, row["id"], sha256))
        fsync_dir(settings.backup_dir)
        return history.complete(
            settings.database_url, row["id"], file_name=final.name,
            size_bytes=copy.stat().st_size, sha256=sha256,
            database_bytes=next(m["size"] for m in manifest["members"]
                                if m["path"] == mf.DUMP_MEMBER),
            document_count=checked.documents, documents_bytes=checked.documents_bytes,
            format_version=manifest["format_version"],
            server_version=source.get("server_version"),
            pg_dump_version=source.get("pg_dump_version"),
        )
    except BaseException:
        if final is not None:
            final.unlink(missing_ok=True)
        history.delete(settings.database_url, row["id"])
        raise
