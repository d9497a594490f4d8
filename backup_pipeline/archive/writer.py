"""Writing tar entries through gzip members: compressed, or stored as they are.

Already-compressed data (the dump, JPEGs, PDFs, zips) goes into members of stored deflate
blocks (no compression: a compressor's lowest level would grow it by a fifth), the rest is
compressed at the backup's level on its threads (see compression.py); RFC 1952 allows
concatenated members and GNU tar and gzip read them.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from isal import isal_zlib

from backup_pipeline.archive.compression import CHUNK, Compression, ParallelMembers

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
LEVEL_STORE = 0  # stored blocks, see StoredDeflate
LEVEL_COMPRESS = 1  # the backup's compression level (GzipMembers' Compression)
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no mtime, OS unknown
_MAX_STORED = 0xFFFF

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

    def flush(self) -> None:
        self.raw.flush()


class StoredDeflate:
    """A gzip member of stored deflate blocks: the bytes as they are, framed and checksummed.

    It costs a CRC and a copy, and adds 5 bytes per 64 KiB.
    """

    def __init__(self) -> None:
        self._started = False
        self.crc = 0
        self.size = 0

    def compress(self, data: bytes) -> bytes:
        parts = [] if self._started else [_GZIP_HEADER]
        self._started = True
        if not data:
            return b"".join(parts)
        self.crc = isal_zlib.crc32(data, self.crc)
        self.size += len(data)
        view = memoryview(data)
        for start in range(0, len(view), _MAX_STORED):
            block = view[start:start + _MAX_STORED]
            n = len(block)
            parts.append(struct.pack("<BHH", 0, n, n ^ 0xFFFF))
            parts.append(block)
        return b"".join(parts)

    def flush(self) -> bytes:
        head = b"" if self._started else _GZIP_HEADER
        self._started = True
        final_empty_block = struct.pack("<BHH", 1, 0, 0xFFFF)
        return head + final_empty_block + struct.pack("<II", self.crc, self.size & 0xFFFFFFFF)


class StoredMemberWriter:
    """A file-like writer that puts what it is given into one stored gzip member in `out`,
    hashing it: how the dump's compressed stream becomes the archive's dump entry as it is
    produced, so assembling the archive only appends it."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.member = StoredDeflate()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.out.write(self.member.compress(data))
        return len(data)

    def flush(self) -> None:
        self.out.flush()

    def finish(self, tail: bytes = b"") -> int:
        """End the member after `tail` (not hashed or counted); returns the member's payload
        size, tail included."""
        self.out.write(self.member.compress(tail) + self.member.flush())
        self.out.flush()
        return self.member.size


class GzipMembers:
    """A tar stream into gzip members: LEVEL_COMPRESS data compressed on `compression`'s
    threads, LEVEL_STORE data in stored members; a change of level starts a new member."""

    def __init__(self, out: HashingWriter | BinaryIO, compression: Compression | None = None):
        self.out = out
        self._members = ParallelMembers(out, compression or Compression())
        self._stored: StoredDeflate | None = None
        self.uncompressed = 0

    def write(self, data: bytes, level: int) -> None:
        self.uncompressed += len(data)
        if level == LEVEL_STORE:
            if self._stored is None:
                self._stored = StoredDeflate()
            self._members.write_ready(self._stored.compress(data))  # ends a compressed member
        else:
            self._end_stored()
            self._members.write(data)

    def _end_stored(self) -> None:
        if self._stored is not None:
            self._members.write_ready(self._stored.flush())
            self._stored = None

    def end_member(self) -> None:
        """End the current member; everything written so far is in `out`."""
        self._end_stored()
        self._members.flush()

    def abandon(self) -> None:
        """After a failure: drop what is still being compressed."""
        self._members.abandon()

    def write_raw_members(self, source: BinaryIO, uncompressed_size: int) -> None:
        """Append complete gzip members made elsewhere, unchanged."""
        self.end_member()
        while chunk := source.read(CHUNK):
            self.out.write(chunk)
        self.uncompressed += uncompressed_size

    def append_file(self, path: Path, uncompressed_size: int) -> None:
        """Append the complete gzip members in file `path`, unchanged, copied by the kernel
        (copy_file_range) when `out` is an unbuffered file; its bytes are not hashed here."""
        self.end_member()
        with open(path, "rb") as source:
            copy_file(source, self.out)
        self.uncompressed += uncompressed_size


def copy_file(source: BinaryIO, out: BinaryIO) -> None:
    """Copy source from its position to its end into out at out's position."""
    if isinstance(out, io.FileIO) and hasattr(os, "copy_file_range"):
        try:
            while os.copy_file_range(source.fileno(), out.fileno(), 1 << 30):
                pass
            return
        except OSError as exc:  # another file system, or no support: copy through memory
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    while chunk := source.read(CHUNK):
        out.write(chunk)


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


def create_private(path: Path, buffering: int = -1) -> BinaryIO:
    """A new file, mode 0600, that must not exist yet."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "wb", buffering=buffering)
