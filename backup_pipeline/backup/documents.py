"""Collecting the documents tree into a pre-compressed tar segment.

Each file is read once: its size and sha256 are computed while it is written, so the manifest
describes exactly the bytes archived. Symlinks and special files are never followed or stored,
only reported, so nothing outside DOCUMENTS_DIR can enter an archive. A DocumentCollector does
the same on a thread of its own, so documents are archived while pg_dump runs.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from backup_pipeline.archive.compression import Compression
from backup_pipeline.archive.manifest import DOCUMENTS_PREFIX, RESERVED_PREFIX
from backup_pipeline.archive.writer import (
    CHUNK,
    LEVEL_COMPRESS,
    LEVEL_STORE,
    GzipMembers,
    HashingWriter,
    SourceReadError,
    create_private,
    looks_compressed,
    read_source,
    write_entry_from_file,
)
from backup_pipeline.errors import BackupError
from backup_pipeline.progress import Progress


@dataclass
class DocumentsResult:
    segment_path: str
    index_path: str
    count: int = 0
    bytes: int = 0
    segment_bytes: int = 0
    tar_bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _walk(root: Path, skipped: list[str]) -> Iterator[tuple[str, os.stat_result]]:
    """Regular files under root in sorted order, as (relative posix path, lstat)."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = root / rel_dir if rel_dir else root
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise BackupError(
                f"cannot read documents folder {rel_dir or '.'!r}: {exc.strerror}"
            ) from None
        subdirs = []
        for entry in entries:
            if not rel_dir and entry.name.startswith(RESERVED_PREFIX):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                raise BackupError(
                    f"document name {rel.encode('utf-8', 'surrogateescape')!r} is not UTF-8; "
                    "rename it"
                ) from None
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(rel)
            elif stat.S_ISREG(st.st_mode):
                yield rel, st
            else:
                kind = "symlink" if stat.S_ISLNK(st.st_mode) else "special file"
                skipped.append(f"{rel} ({kind})")
        stack.extend(reversed(subdirs))


def check_root(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise BackupError(f"documents directory {root} does not exist or is not a directory")
    return root


Scan = tuple[list[tuple[str, os.stat_result]], list[str]]


def scan(root: Path) -> Scan:
    """The regular files to archive (sorted, as (relative path, lstat)) and what is skipped;
    a folder that cannot be read or a name that is not UTF-8 fails here."""
    skipped: list[str] = []
    return list(_walk(check_root(root), skipped)), skipped


def collect_documents(root: Path, staging: Path, progress: Progress | None = None,
                      check: Callable[[], None] | None = None,
                      scanned: Scan | None = None,
                      compression: Compression | None = None) -> DocumentsResult:
    """Write every document (of `scanned`, or found now) as a tar entry into
    `staging/documents.segment` (gzip members) and its (path, size, sha256) into
    `staging/documents.jsonl`. `check`, called for every chunk read, may raise to stop."""
    progress = progress or Progress()
    root = check_root(root)
    files, skipped = scanned if scanned is not None else scan(root)

    def on_bytes(n: int) -> None:
        progress.add_bytes(n)
        if check is not None:
            check()

    started = time.monotonic()
    progress.set_phase("archiving documents")
    result = DocumentsResult(str(staging / "documents.segment"), str(staging / "documents.jsonl"),
                             skipped=list(skipped))
    with create_private(Path(result.segment_path)) as seg_raw, \
            create_private(Path(result.index_path)) as index:
        out = HashingWriter(seg_raw)
        gz = GzipMembers(out, compression)
        try:
            _archive_files(root, files, gz, index, result, on_bytes, progress)
        except BaseException:
            gz.abandon()
            raise
        gz.end_member()
        seg_raw.flush()
        result.segment_bytes = out.size
        result.tar_bytes = gz.uncompressed
    result.seconds = time.monotonic() - started
    return result


def _archive_files(root: Path, files: list, gz: GzipMembers, index, result: DocumentsResult,
                   on_bytes: Callable[[int], None], progress: Progress) -> None:
    for rel, st in files:
        name = DOCUMENTS_PREFIX + rel
        try:
            fd = os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            result.skipped.append(f"{rel} (deleted during the backup)")
            continue
        except OSError as exc:
            raise BackupError(f"cannot read document {rel!r}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as source:
            try:
                head = read_source(source, min(CHUNK, st.st_size))
                level = LEVEL_STORE if looks_compressed(Path(rel), head) else LEVEL_COMPRESS
                digest = write_entry_from_file(
                    gz, name, source, st.st_size, level, mtime=int(st.st_mtime),
                    mode=st.st_mode, on_bytes=on_bytes, first_chunk=head,
                )
            except EOFError:
                raise BackupError(
                    f"document {rel!r} shrank while it was being read; run the backup again"
                ) from None
            except SourceReadError as exc:
                raise BackupError(f"cannot read document {rel!r}: {exc.strerror}") from None
        index.write(json.dumps({"path": name, "size": st.st_size, "sha256": digest},
                               ensure_ascii=False).encode() + b"\n")
        result.count += 1
        result.bytes += st.st_size
        progress.add_document()


class Stopped(BaseException):
    """Raised inside a collector's thread when it is asked to stop."""


class _Counting(Progress):
    """Counts without reporting: the collector's thread must not call into listeners that
    belong to a step that has already returned."""

    def _report(self, force: bool = False) -> None:
        return


class DocumentCollector:
    """collect_documents on a thread of its own; `check` raises its error as soon as it has
    one, `wait` returns its result, `stop` ends it early. The tree is scanned before the
    thread starts, so a folder or a name that cannot be archived fails the step that starts
    it."""

    def __init__(self, root: Path, staging: Path, compression: Compression | None = None):
        self.root = check_root(root)
        self.staging = Path(staging)
        self.compression = compression
        self._scanned = scan(self.root)
        self.progress: Progress = _Counting()
        self.result: DocumentsResult | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collect-documents",
                                        daemon=True)

    def start(self) -> DocumentCollector:
        self._thread.start()
        return self

    def _stopping(self) -> None:
        if self._stop.is_set():
            raise Stopped

    def _run(self) -> None:
        try:
            self.result = collect_documents(self.root, self.staging, self.progress,
                                            check=self._stopping, scanned=self._scanned,
                                            compression=self.compression)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits
            self.error = exc

    def check(self) -> None:
        if self.error is not None and not isinstance(self.error, Stopped):
            raise self.error

    def wait(self) -> DocumentsResult:
        self._thread.join()
        self.check()
        if self.result is None:
            raise BackupError("the documents collection was stopped before it finished")
        return self.result

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


def read_index(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)
