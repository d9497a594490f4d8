"""Already-compressed data is stored, not recompressed: valid gzip, and no bigger than it was."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from backup_pipeline.archive.writer import (
    LEVEL_COMPRESS,
    LEVEL_STORE,
    GzipMembers,
    StoredDeflate,
    StoredMemberWriter,
    copy_file,
    padding,
    write_end,
    write_entry_bytes,
)


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 300_000])
def test_stored_member_is_gzip_of_the_bytes_as_they_are(size: int):
    data = os.urandom(size)
    member = StoredDeflate()
    out = member.compress(data[: size // 2]) + member.compress(data[size // 2:]) + member.flush()
    assert gzip.decompress(out) == data
    blocks = -(-size // 65_535)  # at most 64 KiB per stored block, 5 bytes of header each
    assert len(out) <= 10 + size + 5 * (blocks + 2) + 5 + 8


def test_incompressible_documents_do_not_grow(tmp_path: Path):
    photo = b"\xff\xd8\xff\xe0" + os.urandom(2_000_000)
    path = tmp_path / "a.tar.gz"
    with open(path, "wb") as raw:
        gz = GzipMembers(raw)
        write_entry_bytes(gz, "documents/1/photo.jpg", photo, LEVEL_STORE)
        write_entry_bytes(gz, "documents/1/note.txt", b"oil change\n" * 1000, LEVEL_COMPRESS)
        write_end(gz)
    assert path.stat().st_size < len(photo) * 1.001 + 10_240
    subprocess.run(["gzip", "-t", str(path)], check=True)
    listing = subprocess.run(["tar", "tzf", str(path)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert listing == ["documents/1/photo.jpg", "documents/1/note.txt"]
    with tarfile.open(path, "r:gz") as tar:
        assert tar.extractfile("documents/1/photo.jpg").read() == photo


def test_stored_member_writer_hashes_only_what_it_is_given(tmp_path: Path):
    import hashlib

    sink = io.BytesIO()
    writer = StoredMemberWriter(sink)
    payload = os.urandom(100_000)
    writer.write(payload[:1000])
    writer.write(payload[1000:])
    total = writer.finish(padding(len(payload)))
    assert writer.size == len(payload) and total == len(payload) + len(padding(len(payload)))
    assert writer.sha256.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert gzip.decompress(sink.getvalue()) == payload + padding(len(payload))


def test_copy_file_by_the_kernel_and_through_memory(tmp_path: Path):
    source = tmp_path / "src"
    source.write_bytes(os.urandom(3_000_000))
    target = tmp_path / "dst"
    with open(source, "rb") as src, open(target, "wb", buffering=0) as out:
        out.write(b"head")
        copy_file(src, out)  # a plain file: copy_file_range
        out.write(b"tail")
    assert target.read_bytes() == b"head" + source.read_bytes() + b"tail"
    memory = io.BytesIO()
    with open(source, "rb") as src:
        copy_file(src, memory)  # not a file: read and write
    assert memory.getvalue() == source.read_bytes()
