"""manifest.json: what an archive holds, and the rules every archive must follow."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from backup_pipeline.errors import ArchiveError

FORMAT_NAME = "motovaultpro-backup"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MANIFEST_NAME = "manifest.json"
DUMP_MEMBER = "database/motovaultpro.sql.gz"
DOCUMENTS_PREFIX = "documents/"
# Top-level names in DOCUMENTS_DIR that belong to a restore in progress, never to a user: never
# archived, compared or swapped, and refused in an archive.
RESERVED_PREFIX = ".backup-pipeline-"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
DUMP_COMPLETE_MARKER = b"-- PostgreSQL database dump complete"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_member_name(name: str) -> None:
    """Reject any name that could land outside a staging directory or is not ours."""
    if not name or "\x00" in name or "\\" in name:
        raise ArchiveError(f"unsafe member name {name!r}")
    if name.startswith("/") or posixpath.normpath(name) != name:
        raise ArchiveError(f"unsafe member name {name!r}: not a plain relative path")
    if any(part in ("..", ".", "") for part in name.split("/")):
        raise ArchiveError(f"unsafe member name {name!r}: contains '..'")
    if name != MANIFEST_NAME and name != DUMP_MEMBER and not (
        name.startswith(DOCUMENTS_PREFIX) and len(name) > len(DOCUMENTS_PREFIX)
    ):
        raise ArchiveError(f"unexpected member {name!r}: not the manifest, the dump or a document")
    if name.startswith(DOCUMENTS_PREFIX + RESERVED_PREFIX):
        raise ArchiveError(f"member {name!r} uses the name prefix {RESERVED_PREFIX!r} that "
                           "restores reserve for their own files")


def file_above(path: str, files: Collection[str]) -> str | None:
    """The member among `files` that `path` would have to lie below (a file where `path` needs
    a directory), if any."""
    parent = path.rpartition("/")[0]
    while parent:
        if parent in files:
            return parent
        parent = parent.rpartition("/")[0]
    return None


def check_path_conflicts(paths: list[str]) -> None:
    """Refuse a member below another member (`documents/1/a` and `documents/1/a/b`): no tree
    holds both, so a restore would fail half-way through writing the documents."""
    files = set(paths)
    for path in paths:
        above = file_above(path, files)
        if above is not None:
            raise ArchiveError(f"member {path!r} lies below {above!r}, which is a file: "
                               "the paths conflict")


def check_directory_member(name: str, files: Collection[str]) -> None:
    """Refuse a directory entry where the manifest lists a file (at it or above it)."""
    clash = name if name in files else file_above(name, files)
    if clash is not None:
        raise ArchiveError(f"directory member {name + '/'!r} conflicts with the file "
                           f"{clash!r}")


def build(
    *,
    backup_id: str,
    backup_type: str,
    trigger: str,
    started_at: datetime,
    source: dict[str, Any],
    members: list[dict[str, Any]],
    contents: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`contents` (rows per table, large objects) is optional: archives made before it was
    counted carry none and stay valid."""
    documents = [m for m in members if m["path"].startswith(DOCUMENTS_PREFIX)]
    dump = next((m for m in members if m["path"] == DUMP_MEMBER), None)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "backup_id": backup_id,
        "backup_type": backup_type,
        "trigger": trigger,
        "started_at": iso(started_at),
        "created_at": iso(utc_now()),
        "source": source,
        "totals": {
            "database_bytes": dump["size"] if dump else 0,
            "documents": len(documents),
            "documents_bytes": sum(m["size"] for m in documents),
        },
        **({"contents": contents} if contents is not None else {}),
        "members": members,
    }


def _check_contents(contents: Any) -> None:
    """`contents`, when present: {"tables": {name: rows}, "table_rows": n, "large_objects": n}."""
    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not isinstance(contents, dict):
        raise ArchiveError("manifest.json has malformed contents (expected an object)")
    tables = contents.get("tables")
    if not isinstance(tables, dict) or not all(
            isinstance(k, str) and count(v) for k, v in tables.items()):
        raise ArchiveError("manifest.json has malformed contents.tables (expected table names "
                           "with row counts)")
    for key in ("table_rows", "large_objects"):
        if not count(contents.get(key)):
            raise ArchiveError(f"manifest.json has an invalid contents.{key}")


def encode(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=False) + "\n").encode()


def parse(data: bytes) -> dict[str, Any]:
    """Decode and validate a manifest; every problem is an ArchiveError naming it."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"manifest.json is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ArchiveError("manifest.json is not a motovaultpro backup manifest")
    version = manifest.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise ArchiveError(
            f"manifest format version {version!r} is not supported "
            f"(supported: {SUPPORTED_VERSIONS})"
        )
    members = manifest.get("members")
    if not isinstance(members, list):
        raise ArchiveError("manifest.json has no member list")
    seen: set[str] = set()
    for entry in members:
        if not isinstance(entry, dict):
            raise ArchiveError("manifest.json has a malformed member entry")
        path, size, digest = entry.get("path"), entry.get("size"), entry.get("sha256")
        if not isinstance(path, str):
            raise ArchiveError("manifest.json has a member without a path")
        check_member_name(path)
        if path == MANIFEST_NAME:
            raise ArchiveError("manifest.json lists itself as a member")
        if path in seen:
            raise ArchiveError(f"manifest.json lists {path!r} twice")
        seen.add(path)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ArchiveError(f"manifest.json gives {path!r} an invalid size")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise ArchiveError(f"manifest.json gives {path!r} an invalid sha256")
    check_path_conflicts([entry["path"] for entry in members])
    if DUMP_MEMBER not in seen:
        raise ArchiveError(f"manifest.json does not list {DUMP_MEMBER}")
    if "contents" in manifest:
        _check_contents(manifest["contents"])
    return manifest


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its member list: what `show` prints."""
    return {k: v for k, v in manifest.items() if k != "members"}
