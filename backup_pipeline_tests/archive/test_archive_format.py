"""The archive format: standard tools read what we write; verify rejects every kind of damage."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive import reader
from backup_pipeline.archive.writer import (
    LEVEL_COMPRESS,
    LEVEL_STORE,
    GzipMembers,
    HashingWriter,
    write_end,
    write_entry_bytes,
)
from backup_pipeline.errors import ArchiveError

DUMP_SQL = b"CREATE TABLE t (a int);\n-- PostgreSQL database dump complete\n\n"


def build_archive(path: Path, members: dict[str, bytes], *, manifest_members=None,
                  manifest_first: bool = True, extra: dict[str, bytes] | None = None) -> Path:
    """Write an archive the way our writer does, with room to break it on purpose."""
    listed = [{"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
              for name, data in members.items()]
    manifest = mf.build(backup_id="b", backup_type="manual", trigger="test",
                        started_at=mf.utc_now(), source={},
                        members=manifest_members if manifest_members is not None else listed)
    with open(path, "wb") as raw:
        gz = GzipMembers(HashingWriter(raw))
        entries = [(mf.MANIFEST_NAME, mf.encode(manifest))] + list(members.items())
        entries += list((extra or {}).items())
        if not manifest_first:
            entries = entries[1:] + entries[:1]
        for name, data in entries:
            level = LEVEL_STORE if name == mf.DUMP_MEMBER else LEVEL_COMPRESS
            write_entry_bytes(gz, name, data, level)
        write_end(gz)
    return path


def good_members() -> dict[str, bytes]:
    return {
        mf.DUMP_MEMBER: gzip.compress(DUMP_SQL),
        "documents/7/a.txt": b"hello\n" * 1000,
        "documents/7/b.bin": bytes(range(256)) * 40,
    }


def test_standard_tools_read_multi_member_archive(tmp_path: Path):
    path = build_archive(tmp_path / "a.tar.gz", good_members())
    listing = subprocess.run(["tar", "tzf", str(path)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert listing == ["manifest.json", mf.DUMP_MEMBER, "documents/7/a.txt", "documents/7/b.bin"]
    subprocess.run(["gzip", "-t", str(path)], check=True)
    with tarfile.open(path, "r:gz") as tar:
        assert tar.extractfile("documents/7/a.txt").read() == b"hello\n" * 1000
    # more than one gzip member: the level changes between manifest, dump and documents
    assert path.read_bytes().count(b"\x1f\x8b\x08") >= 3


def test_verify_accepts_good_archive(tmp_path: Path):
    path = build_archive(tmp_path / "a.tar.gz", good_members())
    report = reader.verify(path)
    assert report.members == 3 and report.dump_complete
    # the one read that checks the members also hashes the whole file
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_byte_anywhere_is_detected(tmp_path: Path):
    """Every flip that changes what the archive holds is refused. (A flip in a gzip header's
    mtime or in unused deflate bits changes no byte of any member; the catalog's sha256 of the
    whole file catches those for our own backups.)"""
    original = build_archive(tmp_path / "a.tar.gz", good_members()).read_bytes()
    content = gzip.decompress(original)
    refused = 0
    for offset in range(len(original)):
        damaged = tmp_path / "d.tar.gz"
        damaged.write_bytes(original)
        _flip(damaged, offset)
        try:
            same = gzip.decompress(damaged.read_bytes()) == content
        except (OSError, EOFError, zlib.error):
            same = False
        if same:
            continue
        with pytest.raises(ArchiveError):
            reader.verify(damaged)
        refused += 1
    assert refused > len(original) * 0.9


def test_truncated_archive_is_detected(tmp_path: Path):
    original = build_archive(tmp_path / "a.tar.gz", good_members()).read_bytes()
    for cut in (10, len(original) // 3, len(original) // 2, len(original) - 30):
        damaged = tmp_path / f"t{cut}.tar.gz"
        damaged.write_bytes(original[:cut])
        with pytest.raises(ArchiveError):
            reader.verify(damaged)


def test_member_content_not_matching_manifest(tmp_path: Path):
    members = good_members()
    listed = [{"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
              for n, d in members.items()]
    listed[1]["sha256"] = "0" * 64
    with pytest.raises(ArchiveError, match="sha256"):
        reader.verify(build_archive(tmp_path / "a.tar.gz", members, manifest_members=listed))
    listed[1]["sha256"] = hashlib.sha256(members["documents/7/a.txt"]).hexdigest()
    listed[1]["size"] += 1
    with pytest.raises(ArchiveError, match="bytes, the manifest says"):
        reader.verify(build_archive(tmp_path / "b.tar.gz", members, manifest_members=listed))


def test_missing_and_unlisted_members(tmp_path: Path):
    members = good_members()
    listed = [{"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
              for n, d in members.items()]
    del members["documents/7/b.bin"]
    with pytest.raises(ArchiveError, match="missing"):
        reader.verify(build_archive(tmp_path / "a.tar.gz", members, manifest_members=listed))
    with pytest.raises(ArchiveError, match="not listed"):
        reader.verify(build_archive(tmp_path / "b.tar.gz", good_members(),
                                    extra={"documents/8/x": b"x"}))


def test_manifest_must_come_first(tmp_path: Path):
    with pytest.raises(ArchiveError, match="first member"):
        reader.verify(build_archive(tmp_path / "a.tar.gz", good_members(),
                                    manifest_first=False))


def test_incomplete_dump_is_detected(tmp_path: Path):
    members = good_members()
    members[mf.DUMP_MEMBER] = gzip.compress(b"CREATE TABLE t (a int);\n")
    with pytest.raises(ArchiveError, match="completion line"):
        reader.verify(build_archive(tmp_path / "a.tar.gz", members))


@pytest.mark.parametrize("name", ["../x", "/etc/x", "documents/../../x", "documents/./a",
                                  "other/x", "documents/"])
def test_unsafe_names_are_rejected(name: str):
    with pytest.raises(ArchiveError):
        mf.check_member_name(name)


def _tar_with(tmp_path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A manifest-first archive plus one odd member, written by Python's tarfile."""
    members = good_members()
    listed = [{"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
              for n, d in members.items()]
    manifest = mf.encode(mf.build(backup_id="b", backup_type="manual", trigger="t",
                                  started_at=mf.utc_now(), source={}, members=listed))
    path = tmp_path / "odd.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, content in [(mf.MANIFEST_NAME, manifest), *members.items()]:
            entry = tarfile.TarInfo(name)
            entry.size = len(content)
            tar.addfile(entry, io.BytesIO(content))
        tar.addfile(info, io.BytesIO(data) if data else None)
    return path


@pytest.mark.parametrize("kind,label", [
    (tarfile.SYMTYPE, "symlink"), (tarfile.LNKTYPE, "hard link"),
    (tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"),
    (tarfile.FIFOTYPE, "FIFO"),
])
def test_non_regular_members_are_rejected(tmp_path: Path, kind: bytes, label: str):
    info = tarfile.TarInfo("documents/7/odd")
    info.type = kind
    info.linkname = "/etc/passwd"
    with pytest.raises(ArchiveError, match=label):
        reader.verify(_tar_with(tmp_path, info))


def test_not_an_archive(tmp_path: Path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not gzip at all")
    with pytest.raises(ArchiveError):
        reader.verify(junk)
    bad_manifest = tmp_path / "m.tar.gz"
    with tarfile.open(bad_manifest, "w:gz") as tar:
        data = json.dumps({"format": "something-else"}).encode()
        info = tarfile.TarInfo(mf.MANIFEST_NAME)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ArchiveError, match="not a motovaultpro backup manifest"):
        reader.verify(bad_manifest)
