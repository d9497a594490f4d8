"""Receiving an uploaded archive: streamed to a private quarantine file, never past a size limit.

Accepts `multipart/form-data` (a `file` part and an optional `note` part, what a browser's
FormData sends) or the archive itself as the body (`application/gzip` or
`application/octet-stream`). Nothing is held in memory beyond one chunk; the quarantine file is
the caller's to delete.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from backup_pipeline.api.errors import TooLargeError
from backup_pipeline.errors import ConfigError

RAW_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream")
MAX_NOTE = 1000
MAX_PART_HEADERS = 16 * 1024
DRAIN_LIMIT = 64 * 1024**2


@dataclass
class Received:
    path: Path
    size: int
    file_name: str | None
    note: str | None


def safe_name(name: str | None) -> str | None:
    """The base name of a client's file name, printable and short, for notes only."""
    if not name:
        return None
    base = re.split(r"[\\/]", name)[-1]
    cleaned = "".join(c for c in base if c.isprintable())[:200].strip()
    return cleaned or None


class _Sink:
    """Writes the archive's bytes to the quarantine file and counts them against the limit."""

    def __init__(self, out: BinaryIO, limit: int):
        self.out = out
        self.limit = limit
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise _too_large(self.limit)
        self.out.write(data)


class _FormReader:
    """Feeds a multipart body through python-multipart's streaming parser."""

    def __init__(self, boundary: bytes, sink: _Sink):
        self.sink = sink
        self.headers: list[tuple[bytes, bytes]] = []
        self.field = b""
        self.value = b""
        self.header_bytes = 0
        self.part: str | None = None
        self.file_name: str | None = None
        self.note = bytearray()
        self.files = 0
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
        })

    def _part_begin(self) -> None:
        self.headers, self.part, self.header_bytes = [], None, 0

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self.field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self.value += data[start:end]

    def _count(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > MAX_PART_HEADERS:
            raise ConfigError("a part's headers are too long")

    def _header_end(self) -> None:
        self.headers.append((self.field.lower(), self.value))
        self.field, self.value = b"", b""

    def _headers_finished(self) -> None:
        disposition = dict(self.headers).get(b"content-disposition", b"")
        _, params = parse_options_header(disposition)
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if name == "file":
            self.files += 1
            if self.files > 1:
                raise ConfigError("send one archive per upload (one 'file' part)")
            raw = params.get(b"filename")
            self.file_name = safe_name(raw.decode("utf-8", "replace") if raw else None)
        elif name != "note":
            raise ConfigError(f"unexpected form field {name!r}; expected 'file' and "
                              "optionally 'note'")
        self.part = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part == "file":
            self.sink.write(data[start:end])
        elif self.part == "note":
            self.note += data[start:end]
            if len(self.note) > 4 * MAX_NOTE:
                raise ConfigError(f"the note is longer than {MAX_NOTE} characters")

    def note_text(self) -> str:
        return bytes(self.note).decode("utf-8", "replace")


def _too_large(limit: int) -> TooLargeError:
    return TooLargeError(f"the upload is larger than the limit of {limit} bytes "
                         "(API_UPLOAD_MAX_BYTES)")


def _note(text: str | None) -> str | None:
    text = (text or "").replace("\x00", "").strip()
    if len(text) > MAX_NOTE:
        raise ConfigError(f"the note is longer than {MAX_NOTE} characters")
    return text or None


async def _drain(chunks: AsyncIterator[bytes], budget: int) -> None:
    """Read and drop what the client still sends (up to `budget` bytes), so a client that
    writes its whole body before reading the answer still gets the 413."""
    async for chunk in chunks:
        budget -= len(chunk)
        if budget < 0:
            return


async def receive(request: Request, quarantine: Path, limit: int) -> Received:
    """Stream the request's archive into `quarantine` (created 0600); TooLargeError past
    `limit` bytes, ConfigError for a body that is not an upload."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    content_type = content_type.decode("latin-1").lower()
    if content_type == "multipart/form-data":
        if not params.get(b"boundary"):
            raise ConfigError("multipart/form-data without a boundary")
    elif content_type not in RAW_TYPES:
        raise ConfigError(f"unsupported content type {content_type or '(none)'!r}; send "
                          "multipart/form-data with a 'file' field, or the archive as "
                          "application/gzip")
    chunks = request.stream()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MAX_PART_HEADERS:
        await _drain(chunks, DRAIN_LIMIT)
        raise _too_large(limit)
    fd = os.open(quarantine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        sink = _Sink(out, limit)
        try:
            if content_type in RAW_TYPES:
                async for chunk in chunks:
                    sink.write(chunk)
                return Received(quarantine, sink.size,
                                safe_name(request.query_params.get("file_name")),
                                _note(request.query_params.get("note")))
            form = _FormReader(params[b"boundary"], sink)
            try:
                async for chunk in chunks:
                    form.parser.write(chunk)
                form.parser.finalize()
            except MultipartParseError as exc:
                raise ConfigError(f"the multipart body is malformed: {exc}") from None
        except TooLargeError:
            await _drain(chunks, DRAIN_LIMIT)
            raise
    if form.files != 1:
        raise ConfigError("no archive in the upload: send it as the form field 'file'")
    return Received(quarantine, sink.size, form.file_name, _note(form.note_text()))
