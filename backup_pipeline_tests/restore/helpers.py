"""Building archives (good and bad) and fingerprinting what a restore must not change."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from isal import igzip, isal_zlib

from backup_pipeline.archive import manifest as mf
from backup_pipeline.catalog import history
from backup_pipeline.postgres import client_env
from backup_pipeline.settings import Settings

_RESTRICT = re.compile(r"^\\(un)?restrict .*$", re.M)


def gz(data: bytes, level: int = 3) -> bytes:
    c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def gunzip(data: bytes) -> bytes:
    """Every gzip member of `data` (the dump is one member per MiB of SQL)."""
    return igzip.decompress(data)


def read_archive(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(manifest, {member name: bytes}) of an archive written by the backup."""
    with tarfile.open(path, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}
    return json.loads(members.pop(mf.MANIFEST_NAME)), members


def manifest_for(members: dict[str, bytes], base: dict[str, Any] | None = None,
                 sql_bytes: int | None = None) -> dict[str, Any]:
    """A manifest describing `members` exactly (base's other fields kept)."""
    manifest = dict(base or {"format": mf.FORMAT_NAME, "format_version": mf.FORMAT_VERSION,
                             "backup_id": "00000000-0000-0000-0000-000000000000",
                             "backup_type": "manual", "trigger": "test",
                             "started_at": "2024-01-01T00:00:00Z",
                             "created_at": "2024-01-01T00:00:01Z",
                             "source": {"server_version": "15", "pg_dump_version": "15"}})
    manifest["members"] = [{"path": name, "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()}
                           for name, data in members.items()]
    if sql_bytes is None and mf.DUMP_MEMBER in members:
        sql_bytes = len(gunzip(members[mf.DUMP_MEMBER]))
    manifest["source"] = {**manifest.get("source", {}), "sql_bytes": sql_bytes}
    return manifest


def write_archive(path: Path, manifest: dict[str, Any] | bytes, members: dict[str, bytes],
                  extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> Path:
    """manifest.json first, then the members, then raw extra tar entries; gzip-compressed."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = manifest if isinstance(manifest, bytes) else mf.encode(manifest)
        entries = [(mf.MANIFEST_NAME, data), *members.items()]
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
        for info, content in extra:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    path.write_bytes(gz(raw.getvalue()))
    return path


def register(settings: Settings, archive: Path, backup_type: str = "manual") -> str:
    """Put an archive into BACKUP_DIR and the catalog as a completed backup; returns its id."""
    settings.backup_dir.mkdir(parents=True, exist_ok=True)
    target = settings.backup_dir / archive.name
    if archive != target:
        shutil.copyfile(archive, target)
    row = history.create(settings.database_url, backup_type=backup_type, trigger="test")
    history.complete(settings.database_url, row["id"], file_name=target.name,
                     size_bytes=target.stat().st_size,
                     sha256=hashlib.sha256(target.read_bytes()).hexdigest())
    return row["id"]


def pg_dump(url: str, *args: str) -> str:
    conninfo, env = client_env(url)
    done = subprocess.run(["pg_dump", "--no-password", "--exclude-schema=backup", *args,
                           f"--dbname={conninfo}"], capture_output=True, text=True, env=env,
                          check=True)
    return _RESTRICT.sub("", done.stdout)


def database_fingerprint(url: str) -> str:
    """Schema and data (everything but the catalog), as pg_dump writes them."""
    return hashlib.sha256(pg_dump(url).encode()).hexdigest()


def tree_fingerprint(root: Path) -> list[tuple[str, str, int, str]]:
    """Every entry under root: (path, kind, mode, content sha256 or link target)."""
    out = []
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out.append((rel, "link", 0, os.readlink(path)))
            elif stat.S_ISDIR(st.st_mode):
                out.append((rel, "dir", stat.S_IMODE(st.st_mode), ""))
            else:
                out.append((rel, "file", stat.S_IMODE(st.st_mode),
                            hashlib.sha256(path.read_bytes()).hexdigest()))
    return sorted(out)


def tiny_dump(body: str = "") -> bytes:
    """A small plain dump in pg_dump's shape, with an optional body before its end."""
    return (
        "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\n"
        "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n\n"
        "CREATE TABLE public.restored_marker (id integer, note text);\n\n"
        "COPY public.restored_marker (id, note) FROM stdin;\n1\t\\N\n2\tback\\\\slash\n\\.\n\n"
        f"{body}"
        "--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc123\n\n"
    ).encode()
