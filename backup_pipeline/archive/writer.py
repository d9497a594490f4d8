"""Writing tar entries through gzip, one gzip member per run of entries at the same level.

Already-compressed data (the dump, JPEGs, PDFs, zips) goes into members at ISA-L level 0, the
rest at level 3; RFC 1952 allows concatenated members and GNU tar and gzip read them.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from isal import isal_zlib

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
CHUNK = 1024 * 1024
LEVEL_STORE = 0
LEVEL_COMPRESS = 3

_COMPRESSED_SUFFIXES = frozenset({
    ".gz", ".tgz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".7z", ".rar",
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic", ".heif", ".avif", ".pdf",
    ".mp3", ".mp4", ".m4a", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".ogg", ".opus",
    ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp", ".epub", ".woff", ".woff2",
})
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"PK\x03\x04", b"\x89PNG", b"\xff\xd8\xff", b"7z\xbc\xaf",
                     b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ", b"GIF8", b"RIFF", b"%PDF")


class SourceReadError(OSError):
    """Reading the data to archive failed (as opposed to writing the archive)."""


def read_source(source: BinaryIO, n: int) -> bytes:
    try:
        return source.read(n)
    except OSError as exc:
        raise SourceReadError(exc.errno, exc.strerror) from exc


def looks_compressed(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in _COMPRESSED_SUFFIXES or head.startswith(_COMPRESSED_MAGIC)


class HashingWriter:
    """A write-only file that counts and hashes what passes through it."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


class GzipMembers:
    """Deflates a byte stream into gzip members; a change of level starts a new member."""

    def __init__(self, out: HashingWriter | BinaryIO):
        self.out = out
        self._level: int | None = None
        self._compressor = None
        self.uncompressed = 0

    def write(self, data: bytes, level: int) -> None:
        if level != self._level:
            self.end_member()
            self._compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
            self._level = level
        self.uncompressed += len(data)
        out = self._compressor.compress(data)
        if out:
            self.out.write(out)

    def end_member(self) -> None:
        if self._compressor is not None:
            self.out.write(self._compressor.flush())
        self._compressor = None
        self._level = None

    def write_raw_members(self, source: BinaryIO, uncompressed_size: int) -> None:
        """Append complete gzip members made elsewhere, unchanged."""
        self.end_member()
        while chunk := source.read(CHUNK):
            self.out.write(chunk)
        self.uncompressed += uncompressed_size


def tar_header(name: str, size: int, mtime: int = 0, mode: int = 0o600) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = mode & 0o777
    info.type = tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def write_entry_from_file(
    gz: GzipMembers,
    name: str,
    source: BinaryIO,
    size: int,
    level: int,
    *,
    mtime: int = 0,
    mode: int = 0o600,
    on_bytes: Callable[[int], None] | None = None,
    first_chunk: bytes = b"",
) -> str:
    """Write one tar entry of exactly `size` bytes read from `source`; return its sha256.

    Raises EOFError when the source is shorter than `size`.
    """
    gz.write(tar_header(name, size, mtime, mode), level)
    digest = hashlib.sha256()
    remaining = size
    chunk = first_chunk
    while remaining > 0:
        if not chunk:
            chunk = read_source(source, min(CHUNK, remaining))
            if not chunk:
                raise EOFError(name)
        chunk = chunk[:remaining]
        digest.update(chunk)
        gz.write(chunk, level)
        remaining -= len(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
        chunk = b""
    gz.write(padding(size), level)
    return digest.hexdigest()


def write_entry_bytes(gz: GzipMembers, name: str, data: bytes, level: int) -> None:
    gz.write(tar_header(name, len(data)) + data + padding(len(data)), level)


def write_end(gz: GzipMembers) -> None:
    """Two zero blocks, padded to a whole tar record, as tar itself writes."""
    end = 2 * BLOCK
    end += -(gz.uncompressed + end) % RECORD
    gz.write(b"\0" * end, LEVEL_STORE)
    gz.end_member()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_private(path: Path) -> BinaryIO:
    """A new file, mode 0600, that must not exist yet."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "wb")
