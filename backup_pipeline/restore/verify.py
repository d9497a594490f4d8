"""Checking an archive completely in one streaming pass, staging what a restore needs on the way.

Builds on archive.reader.iter_members (manifest first, safe names, regular files only, sizes,
nothing unlisted, nothing missing) and DumpChecker (complete gzip, pg_dump's completion line),
and adds what a restore and an import need: every member's sha256, the dump's SQL bounded by
the size the manifest declares (a gzip bomb stops there), the dump read as psql would read it
(sqlscan), and optionally the dump and the documents written into staging, never outside it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive import reader
from backup_pipeline.archive.writer import CHUNK, create_private
from backup_pipeline.errors import ArchiveError
from backup_pipeline.restore.sqlscan import DumpScanner

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class CheckedArchive(reader.VerifyReport):
    """What one complete pass over an archive found (and where it staged things)."""

    sql_bytes: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    large_objects: int = 0
    restrict_lines: list[tuple[int, int]] = field(default_factory=list)
    documents: int = 0
    documents_bytes: int = 0
    dump_path: str | None = None
    documents_path: str | None = None


def declared_sql_bytes(manifest: dict[str, Any]) -> int:
    """The dump's uncompressed size as the manifest declares it: the bound for decompression."""
    source = manifest.get("source")
    value = source.get("sql_bytes") if isinstance(source, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ArchiveError("manifest.json does not declare the dump's SQL size (source.sql_bytes)")
    return value


def documents_declared(manifest: dict[str, Any]) -> tuple[int, int]:
    """(count, bytes) of the documents the manifest lists."""
    docs = [m for m in manifest["members"] if m["path"].startswith(mf.DOCUMENTS_PREFIX)]
    return len(docs), sum(m["size"] for m in docs)


def member_bytes(manifest: dict[str, Any], path: str) -> int:
    return next((m["size"] for m in manifest["members"] if m["path"] == path), 0)


class _BoundedScanningChecker(reader.DumpChecker):
    """DumpChecker that also hands the SQL to the scanner and stops past the declared size."""

    def __init__(self, scanner: DumpScanner, limit: int) -> None:
        super().__init__()
        self.scanner = scanner
        self.limit = limit

    def _take(self, out: bytes) -> None:
        super()._take(out)
        if self.sql_bytes > self.limit:
            raise ArchiveError(f"the database dump decompresses to more than the {self.limit} "
                               "bytes its manifest declares: refusing it (damaged, or a "
                               "decompression bomb)")
        self.scanner.feed(out)


class DocumentsWriter:
    """Creates files only below `root`, a new directory: every path component is opened
    relative to its parent without following symlinks, and no file is ever replaced."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        os.mkdir(self.root, 0o700)
        self._root_fd = os.open(self.root, _DIR_FLAGS)

    def create(self, rel: str) -> BinaryIO:
        parts = rel.split("/")
        fd = os.dup(self._root_fd)
        try:
            for part in parts[:-1]:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise ArchiveError(f"document {rel!r} conflicts with another member "
                                       f"({exc.strerror})") from None
                os.close(fd)
                fd = child
            try:
                file_fd = os.open(parts[-1], _NEW_FILE_FLAGS, 0o600, dir_fd=fd)
            except FileExistsError:
                raise ArchiveError(f"document {rel!r} conflicts with another member") from None
            return os.fdopen(file_fd, "wb")
        finally:
            os.close(fd)

    def close(self) -> None:
        os.close(self._root_fd)


def check_archive(
    path: Path,
    *,
    dump_to: Path | None = None,
    documents_to: Path | None = None,
    on_manifest: Callable[[dict[str, Any]], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> CheckedArchive:
    """Read every member once: sha256 against the manifest, the dump decompressed (bounded)
    and scanned. With `dump_to` the compressed dump is copied there; with `documents_to` (a
    directory that must not exist yet) the documents are written below it.

    `on_manifest` sees the manifest before any member data is read (space checks go there).
    Raises ArchiveError on the first problem; staged files are then the caller's to remove."""
    path = Path(path)
    scanner = DumpScanner()
    result: CheckedArchive | None = None
    writer: DocumentsWriter | None = None
    try:
        for manifest, member in reader.iter_members(path):
            if result is None:
                limit = declared_sql_bytes(manifest)
                if on_manifest is not None:
                    on_manifest(manifest)
                result = CheckedArchive(str(path), manifest)
                if documents_to is not None:
                    writer = DocumentsWriter(documents_to)
                    result.documents_path = str(documents_to)
            _check_member(member, result, scanner, limit, dump_to, writer, on_bytes)
    finally:
        if writer is not None:
            writer.close()
    if result is None:
        raise ArchiveError(f"{path.name} has no members")
    scan = scanner.finish()
    result.tables = scan.tables
    result.large_objects = scan.large_objects
    result.restrict_lines = scan.restrict_lines
    if dump_to is not None:
        result.dump_path = str(dump_to)
    return result


def _check_member(member: reader.Member, result: CheckedArchive, scanner: DumpScanner,
                  limit: int, dump_to: Path | None, writer: DocumentsWriter | None,
                  on_bytes: Callable[[int], None] | None) -> None:
    digest = hashlib.sha256()
    is_dump = member.name == mf.DUMP_MEMBER
    checker = _BoundedScanningChecker(scanner, limit) if is_dump else None
    out: BinaryIO | None = None
    if is_dump and dump_to is not None:
        out = create_private(dump_to)
    elif not is_dump and writer is not None:
        out = writer.create(member.name[len(mf.DOCUMENTS_PREFIX):])
    try:
        while chunk := member.stream.read(CHUNK):
            digest.update(chunk)
            if checker is not None:
                checker.feed(chunk)
            if out is not None:
                out.write(chunk)
            result.bytes_checked += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        if out is not None and not is_dump:
            os.fchmod(out.fileno(), (member.mode & 0o777) | 0o600)
            out.flush()
            os.utime(out.fileno(), (member.mtime, member.mtime))
    finally:
        if out is not None:
            out.close()
    if digest.hexdigest() != member.expected_sha256:
        raise ArchiveError(f"member {member.name!r} does not match its sha256 in the manifest")
    if checker is not None:
        checker.finish()
        result.sql_bytes = checker.sql_bytes
        result.dump_complete = True
    else:
        result.documents += 1
        result.documents_bytes += member.size
    result.members += 1
