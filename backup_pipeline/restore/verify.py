"""Checking an archive completely in one streaming pass, and staging it in another.

Builds on archive.reader.iter_members (manifest first, safe names, regular files only, sizes,
nothing unlisted, nothing missing) and adds what a restore and an import need: the whole file's
sha256 against the catalog, every member's sha256, the dump complete (gzip, pg_dump's
completion line), its SQL bounded by the size the manifest declares and by a bound the archive
cannot set (RESTORE_MAX_BYTES: a gzip bomb stops there), read as psql would read it (sqlscan),
and the roles it names (rolerefs).

`check_archive` stages nothing. A restore stages with `stage_archive`, which reads the archive
again and checks it all again as it goes (what is staged is what was checked, even if the file
changed in between): the dump's SQL is handed on only once the scanner has passed it, straight
into psql, and the documents are written below their staging folder, never outside it.
"""

from __future__ import annotations

import hashlib
import os
import queue
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from isal import igzip, isal_zlib

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive import reader
from backup_pipeline.archive.writer import CHUNK
from backup_pipeline.errors import ArchiveError
from backup_pipeline.restore.rolerefs import RoleCollector
from backup_pipeline.restore.sqlscan import DumpScanner, ScanResult
from backup_pipeline.settings import DEFAULT_RESTORE_MAX_BYTES as DEFAULT_MAX_BYTES

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# CheckedSql keeps this much of the checked SQL back from psql, so a statement the loader
# must leave out is still whole in its hands when the scanner finds its end.
HOLD_BACK = 64 * 1024


@dataclass
class CheckedArchive(reader.VerifyReport):
    """What one complete pass over an archive found."""

    sql_bytes: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    large_objects: int = 0
    restrict_lines: list[tuple[int, int]] = field(default_factory=list)
    documents: int = 0
    documents_bytes: int = 0
    roles: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)


def declared_sql_bytes(manifest: dict[str, Any]) -> int:
    """The dump's uncompressed size as the manifest declares it: the bound for decompression."""
    source = manifest.get("source")
    value = source.get("sql_bytes") if isinstance(source, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ArchiveError("manifest.json does not declare the dump's SQL size (source.sql_bytes)")
    return value


def unpack_limit(manifest: dict[str, Any], max_bytes: int) -> int:
    """Refuse an archive that declares more data than `max_bytes` (a bound of this system,
    not of the archive); the limit for the dump's SQL: what it declares."""
    sql_bytes = declared_sql_bytes(manifest)
    _, docs_bytes = documents_declared(manifest)
    if sql_bytes + docs_bytes > max_bytes:
        raise ArchiveError(
            f"the archive declares {sql_bytes + docs_bytes} bytes of data ({sql_bytes} of SQL, "
            f"{docs_bytes} of documents), more than the {max_bytes} a restore may unpack here "
            "(RESTORE_MAX_BYTES): refusing it")
    return min(sql_bytes, max_bytes)


def documents_declared(manifest: dict[str, Any]) -> tuple[int, int]:
    """(count, bytes) of the documents the manifest lists."""
    docs = [m for m in manifest["members"] if m["path"].startswith(mf.DOCUMENTS_PREFIX)]
    return len(docs), sum(m["size"] for m in docs)


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


class DumpSql:
    """The dump's SQL, inflated by ISA-L (without the GIL) as its compressed bytes are read
    from `read`, which `digest` (if any) hashes on the way. Iterating yields the SQL in chunks;
    past the size the manifest declares it raises (a gzip bomb stops there), and at the end it
    checks the gzip stream is complete and ends with pg_dump's completion line."""

    def __init__(self, read: Callable[[int], bytes], limit: int, digest: Any = None) -> None:
        self.source = reader.SequentialReader(read, digest)
        self.limit = limit
        self.sql_bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        tail = b""
        with igzip.IGzipFile(fileobj=self.source, mode="rb") as gz:
            while chunk := self._read(gz):
                self.sql_bytes += len(chunk)
                if self.sql_bytes > self.limit:
                    raise ArchiveError(
                        f"the database dump decompresses to more than the {self.limit} bytes "
                        "its manifest declares: refusing it (damaged, or a decompression bomb)")
                tail = (tail + chunk[-256:])[-256:]
                yield chunk
        self.source.read_rest()
        if mf.DUMP_COMPLETE_MARKER not in tail:
            raise ArchiveError("the database dump is incomplete: pg_dump's completion line "
                               "is missing")

    @staticmethod
    def _read(gz: BinaryIO) -> bytes:
        try:
            return gz.read(CHUNK)
        except EOFError:
            raise ArchiveError("the database dump is truncated (its gzip stream does not "
                               "end)") from None
        except (OSError, zlib.error, isal_zlib.error) as exc:
            raise ArchiveError(f"the database dump is not valid gzip: {exc}") from None


class _Handover:
    """Chunks handed from one thread to another, read as a stream (None ends it); at most two
    wait at a time, so memory stays bounded."""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
        self._chunk = b""
        self._pos = 0
        self._ended = False

    def read(self, n: int) -> bytes:
        while self._pos >= len(self._chunk):
            if self._ended:
                return b""
            chunk = self.queue.get()
            if chunk is None:
                self._ended = True
                return b""
            self._chunk, self._pos = chunk, 0
        out = self._chunk[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def drain(self) -> None:
        """Take what is still handed over, so the giving thread never blocks on a reader that
        gave up."""
        while self.read(CHUNK):
            pass


def _scan_dump(handover: _Handover, limit: int, roles: RoleCollector, restricted_load: bool
               ) -> tuple[int, ScanResult]:
    scanner = DumpScanner(on_statement=roles.feed, restricted_load=restricted_load)
    sql = DumpSql(handover.read, limit)
    try:
        for chunk in sql:
            scanner.feed(chunk)
        return sql.sql_bytes, scanner.finish()
    finally:
        handover.drain()


def check_archive(
    path: Path,
    *,
    archive_sha256: str | None = None,
    on_manifest: Callable[[dict[str, Any]], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    restricted_load: bool = False,
) -> CheckedArchive:
    """Read every member once: sha256 against the manifest (and with `archive_sha256`, the
    whole file's against it), the dump decompressed (bounded) and scanned. Stages nothing.

    Three threads share the work (both cores busy): this one reads the archive and hashes
    its members, one inflates and scans the dump as it is handed over, one hashes the file.
    `on_manifest` sees the manifest before any member data is read (space checks go there);
    an archive declaring more than `max_bytes` is refused before then.
    Raises ArchiveError on the first problem."""
    path = Path(path)
    result: CheckedArchive | None = None
    with ThreadPoolExecutor(2, thread_name_prefix="check-archive") as pool:
        whole = pool.submit(reader.sha256_file, path) if archive_sha256 else None
        for manifest, member in reader.iter_members(path):
            if result is None:
                limit = unpack_limit(manifest, max_bytes)
                if on_manifest is not None:
                    on_manifest(manifest)
                result = CheckedArchive(str(path), manifest)
            if member.name != mf.DUMP_MEMBER:
                _copy_member(member, result, None, on_bytes)
                result.documents += 1
                result.documents_bytes += member.size
                continue
            handover = _Handover()
            roles = RoleCollector()
            scanned = pool.submit(_scan_dump, handover, limit, roles, restricted_load)
            try:
                _copy_member(member, result, handover.queue.put, on_bytes)
            finally:
                handover.queue.put(None)
            result.sql_bytes, scan = scanned.result()
            result.tables = scan.tables
            result.large_objects = scan.large_objects
            result.restrict_lines = scan.restrict_lines
            result.roles, result.owners = roles.named, roles.owners
            result.dump_complete = True
        if result is None:
            raise ArchiveError(f"{path.name} has no members")
        if whole is not None and whole.result() != archive_sha256:
            raise ArchiveError(f"{path.name} does not match the sha256 recorded in the catalog")
    return result


def _copy_member(member: reader.Member, result: CheckedArchive,
                 write: Callable[[bytes], Any] | None,
                 on_bytes: Callable[[int], None] | None) -> None:
    """Read a member to its end, hashing it, handing every chunk to `write` (if any); raise
    if its sha256 is not the manifest's."""
    digest = hashlib.sha256()
    while chunk := member.stream.read(CHUNK):
        digest.update(chunk)
        if write is not None:
            write(chunk)
        result.bytes_checked += len(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
    if digest.hexdigest() != member.expected_sha256:
        raise ArchiveError(f"member {member.name!r} does not match its sha256 in the manifest")
    result.members += 1


class CheckedSql:
    """Hands the dump's SQL on to `write` only as far as the scanner has passed it, less the
    last HOLD_BACK bytes until the end. pg_dump's own `\\restrict`/`\\unrestrict` lines (found
    by the scanner) are left out: a loader that needs them runs psql restricted with a key of
    its own. So is every statement for which `leave_out(text)` (if any) says so, called before
    the statement reaches psql (it may prepare for it, such as create a role it names); one
    that is not whole in the bytes held back, or has a comment inside, is refused instead.
    `before` (if any) sees the scan so far just before the first byte is handed on (by then
    pg_dump's `\\restrict` line, at its top, is known)."""

    def __init__(self, write: Callable[[bytes], Any],
                 before: Callable[[ScanResult], None] | None = None,
                 leave_out: Callable[[bytes], bool] | None = None,
                 restricted_load: bool = False) -> None:
        self.scanner = DumpScanner(on_statement=self._statement if leave_out else None,
                                   restricted_load=restricted_load)
        self._write = write
        self._before = before
        self._leave_out = leave_out
        self._skips: list[tuple[int, int]] = []
        self._pending = bytearray()
        self._sent = 0  # offset in the SQL of _pending[0]

    def feed(self, data: bytes) -> None:
        self._pending += data
        self.scanner.feed(data)  # raises on a meta-command: nothing after the last pass left
        hold = HOLD_BACK if self._leave_out else 0
        self._send(max(self._sent, self.scanner.checked_bytes - hold))

    def finish(self) -> ScanResult:
        result = self.scanner.finish()
        self._send(self._sent + len(self._pending))
        return result

    def _statement(self, head: bytes, end: int) -> None:
        if not self._leave_out(head):
            return
        text = head.strip()
        start = end - 1 - len(text)
        at = start - self._sent
        if at < 0 or self._pending[at:at + len(text) + 1] != text + b";":
            shown = " ".join(text[:120].decode("utf-8", "replace").split())
            raise ArchiveError(f"the dump's statement {shown!r} must be left out of this load, "
                               "but it is not in the plain form pg_dump writes")
        self._skips.append((start, end))

    def _send(self, upto: int) -> None:
        n = upto - self._sent
        if n <= 0:
            return
        if self._before is not None:
            self._before(self.scanner.result)
            self._before = None
        start, chunk = self._sent, bytes(self._pending[:n])
        del self._pending[:n]
        self._sent = upto
        pos = 0
        for a, b in sorted(self.scanner.result.restrict_lines + self._skips):
            a, b = max(a, start) - start, min(b, upto) - start
            if a >= b or b <= pos:
                continue
            if a > pos:
                self._write(chunk[pos:a])
            pos = max(pos, b)
        if pos < len(chunk):
            self._write(chunk[pos:])
        self._skips = [r for r in self._skips if r[1] > upto]


def stage_archive(
    path: Path,
    manifest: dict[str, Any],
    *,
    sql_to: Callable[[bytes], Any] | None = None,
    before_sql: Callable[[ScanResult], None] | None = None,
    documents_to: Path | None = None,
    archive_sha256: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
    leave_out: Callable[[bytes], bool] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    restricted_load: bool = False,
) -> None:
    """Read the archive again and stage it, checking everything again on the way: the
    manifest must be `manifest` (the one verified), every member its sha256, the whole file
    `archive_sha256`. The dump's SQL goes to `sql_to` through CheckedSql (nothing the scanner
    has not passed; `before_sql` and `leave_out` as there), bounded as in check_archive by
    `max_bytes`; the documents are written below `documents_to` (a
    directory that must not exist yet). A problem raises ArchiveError at once; the caller then
    discards what was staged (and stops psql before it has read anything more)."""
    path = Path(path)
    archive_digest = hashlib.sha256() if archive_sha256 else None
    seen = CheckedArchive(str(path), manifest)
    limit = unpack_limit(manifest, max_bytes)
    writer = DocumentsWriter(documents_to) if documents_to is not None else None
    try:
        for found, member in reader.iter_members(path, archive_digest):
            if found != manifest:
                raise ArchiveError(f"{path.name} changed after it was verified")
            if member.name == mf.DUMP_MEMBER:
                _stage_dump(member, seen, limit, sql_to, before_sql, leave_out, on_bytes,
                            restricted_load)
            elif writer is not None:
                _stage_document(member, seen, writer, on_bytes)
            else:
                _copy_member(member, seen, None, on_bytes)
    finally:
        if writer is not None:
            writer.close()
    if archive_digest is not None and archive_digest.hexdigest() != archive_sha256:
        raise ArchiveError(f"{path.name} does not match the sha256 recorded in the catalog")


def _stage_dump(member: reader.Member, seen: CheckedArchive, limit: int,
                sql_to: Callable[[bytes], Any] | None,
                before_sql: Callable[[ScanResult], None] | None,
                leave_out: Callable[[bytes], bool] | None,
                on_bytes: Callable[[int], None] | None, restricted_load: bool) -> None:
    if sql_to is None:
        _copy_member(member, seen, None, on_bytes)
        return
    digest = hashlib.sha256()
    sql = DumpSql(member.stream.read, limit, digest)
    forward = CheckedSql(sql_to, before_sql, leave_out, restricted_load)
    for chunk in sql:
        forward.feed(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
    forward.finish()
    if digest.hexdigest() != member.expected_sha256:
        raise ArchiveError(f"member {member.name!r} does not match its sha256 in the manifest")
    seen.members += 1


def start_writeback(fd: int) -> None:
    """Start writing the file to disk now (Linux: DONTNEED starts writeback, not waiting for
    it), while psql still loads, so the sync before the swap finds little left to write."""
    with suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _stage_document(member: reader.Member, seen: CheckedArchive, writer: DocumentsWriter,
                    on_bytes: Callable[[int], None] | None) -> None:
    with writer.create(member.name[len(mf.DOCUMENTS_PREFIX):]) as out:
        _copy_member(member, seen, out.write, on_bytes)
        os.fchmod(out.fileno(), (member.mode & 0o777) | 0o600)
        out.flush()
        os.utime(out.fileno(), (member.mtime, member.mtime))
        start_writeback(out.fileno())
