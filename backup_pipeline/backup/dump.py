"""pg_dump of the application database, streamed through ISA-L gzip into a staging file."""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from isal import isal_zlib

from backup_pipeline.archive.manifest import DUMP_COMPLETE_MARKER
from backup_pipeline.archive.writer import CHUNK, LEVEL_COMPRESS, create_private
from backup_pipeline.errors import BackupError, ConfigError
from backup_pipeline.postgres import client_env, connect, describe, server_version
from backup_pipeline.progress import Progress
from backup_pipeline.settings import Settings

CATALOG_SCHEMA = "backup"


@dataclass(frozen=True)
class DumpResult:
    path: str
    size: int
    sha256: str
    sql_bytes: int
    server_version: str
    pg_dump_version: str
    database: str
    seconds: float


def pg_dump_version(pg_dump: str) -> str:
    try:
        out = subprocess.run([pg_dump, "--version"], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        raise ConfigError(f"cannot run {pg_dump}: {exc.strerror}") from None
    text = out.stdout.strip()
    return text.removeprefix("pg_dump (PostgreSQL) ") if out.returncode == 0 else "unknown"


def _stderr_summary(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")[-4000:]
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()]
    return " ".join((errors or lines)[-2:])


def dump_database(settings: Settings, staging: Path, progress: Progress | None = None
                  ) -> DumpResult:
    """Write `staging/motovaultpro.sql.gz`; fail if pg_dump fails or its output is incomplete."""
    progress = progress or Progress()
    pg_dump = settings.pg_tool("pg_dump")
    with connect(settings.database_url) as conn:
        version = server_version(conn)
    conninfo, env = client_env(settings.database_url)
    target = staging / "motovaultpro.sql.gz"
    stderr_path = staging / "pg_dump.stderr"
    started = time.monotonic()
    progress.set_phase("dumping database")
    cmd = [pg_dump, "--format=plain", "--no-password", f"--exclude-schema={CATALOG_SCHEMA}",
           f"--dbname={conninfo}"]
    digest = hashlib.sha256()
    size = sql_bytes = 0
    tail = b""
    compressor = isal_zlib.compressobj(LEVEL_COMPRESS, isal_zlib.DEFLATED, 31)
    with open(stderr_path, "wb") as err_file, create_private(target) as out:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, env=env,
                                    stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise BackupError(f"cannot start pg_dump: {exc.strerror}") from None
        try:
            while chunk := proc.stdout.read(CHUNK):
                sql_bytes += len(chunk)
                tail = (tail + chunk)[-256:]
                packed = compressor.compress(chunk)
                if packed:
                    out.write(packed)
                    digest.update(packed)
                    size += len(packed)
                progress.add_bytes(len(chunk))
            packed = compressor.flush()
            out.write(packed)
            digest.update(packed)
            size += len(packed)
            returncode = proc.wait()
            out.flush()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    if returncode != 0:
        detail = _stderr_summary(stderr_path) or f"exit code {returncode}"
        raise BackupError(f"pg_dump of {describe(settings.database_url)} failed: {detail}")
    if DUMP_COMPLETE_MARKER not in tail:
        raise BackupError("pg_dump output is incomplete: its completion line is missing")
    stderr_path.unlink(missing_ok=True)
    return DumpResult(
        path=str(target), size=size, sha256=digest.hexdigest(), sql_bytes=sql_bytes,
        server_version=version, pg_dump_version=pg_dump_version(pg_dump),
        database=describe(settings.database_url), seconds=time.monotonic() - started,
    )
