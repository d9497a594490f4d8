"""pg_dump of the application database, streamed through gzip into a staging file.

pg_dump writes into a pipe; this thread only moves its output on, while the compression
threads compress it in chunks (the GIL released) and this thread frames the members as the
archive's dump entry, so pg_dump never waits for compression and assembling the archive later
only appends the file.
"""

from __future__ import annotations

import fcntl
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from backup_pipeline.archive.compression import ParallelMembers
from backup_pipeline.archive.manifest import DUMP_COMPLETE_MARKER
from backup_pipeline.archive.writer import (
    CHUNK,
    StoredMemberWriter,
    create_private,
    padding,
)
from backup_pipeline.backup.rowcount import RowCounter
from backup_pipeline.errors import BackupError, ConfigError
from backup_pipeline.postgres import client_env, connect, describe, server_version
from backup_pipeline.progress import Progress
from backup_pipeline.settings import Settings

CATALOG_SCHEMA = "backup"
CHECK_SECONDS = 0.2


@dataclass(frozen=True)
class DumpResult:
    """`path` holds the dump entry's data as one stored gzip member: the .sql.gz bytes (`size`,
    `sha256`) and the tar padding after them (`tar_bytes` in all)."""

    path: str
    size: int
    sha256: str
    sql_bytes: int
    server_version: str
    pg_dump_version: str
    database: str
    seconds: float
    tar_bytes: int = 0
    contents: dict | None = None  # rows per table and large objects, see RowCounter
    contents_error: str | None = None


class _VersionQuery:
    """`pg_dump --version`, run alongside the dump rather than after it."""

    def __init__(self, pg_dump: str):
        try:
            self._proc = subprocess.Popen([pg_dump, "--version"], stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                          text=True)
        except OSError as exc:
            raise ConfigError(f"cannot run {pg_dump}: {exc.strerror}") from None

    def result(self) -> str:
        try:
            out, _ = self._proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.close()
            return "unknown"
        text = out.strip()
        return text.removeprefix("pg_dump (PostgreSQL) ") if self._proc.returncode == 0 \
            else "unknown"

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


def pg_dump_version(pg_dump: str) -> str:
    return _VersionQuery(pg_dump).result()


def _stderr_summary(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")[-4000:]
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()]
    return " ".join((errors or lines)[-2:])


def _widen_pipe(pipe) -> None:
    """A 1 MiB pipe lets pg_dump run ahead while a chunk is handed over."""
    with suppress(OSError, AttributeError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)


def _output(pipe, check: Callable[[], None] | None) -> Iterator[bytes]:
    """What pg_dump writes, as it comes; `check` runs at least every CHECK_SECONDS, even
    while pg_dump writes nothing (waiting for a lock, say)."""
    poller = select.poll()
    poller.register(pipe.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    while True:
        if check is not None:
            check()
        if not poller.poll(int(CHECK_SECONDS * 1000)):
            continue
        chunk = pipe.read(CHUNK)  # an unbuffered pipe: what is there, up to CHUNK
        if not chunk:
            return
        yield chunk


def dump_database(settings: Settings, staging: Path, progress: Progress | None = None,
                  check: Callable[[], None] | None = None) -> DumpResult:
    """Write the dump entry to `staging/database.segment`; fail if pg_dump fails or its
    output is incomplete. `check`, called for every chunk and while pg_dump is silent, may raise
    to stop the dump."""
    progress = progress or Progress()
    pg_dump = settings.pg_tool("pg_dump")
    with connect(settings.database_url) as conn:
        version = server_version(conn)
    conninfo, env = client_env(settings.database_url)
    target = staging / "database.segment"
    stderr_path = staging / "pg_dump.stderr"
    started = time.monotonic()
    progress.set_phase("dumping database")
    cmd = [pg_dump, "--format=plain", "--no-password", f"--exclude-schema={CATALOG_SCHEMA}",
           f"--dbname={conninfo}"]
    sql_bytes = 0
    tail = b""
    counter = RowCounter()
    version_query = _VersionQuery(pg_dump)
    try:
        with open(stderr_path, "wb") as err_file, create_private(target) as out:
            try:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, env=env,
                                        stdin=subprocess.DEVNULL, bufsize=0)
            except OSError as exc:
                raise BackupError(f"cannot start pg_dump: {exc.strerror}") from None
            _widen_pipe(proc.stdout)
            entry = StoredMemberWriter(out)
            gz = ParallelMembers(entry, settings.compression)
            try:
                for chunk in _output(proc.stdout, check):
                    sql_bytes += len(chunk)
                    tail = (tail + chunk[-256:])[-256:]
                    gz.write(chunk)
                    counter.feed(chunk)
                    progress.add_bytes(len(chunk))
                gz.flush()
                returncode = proc.wait()
            except BaseException:
                gz.abandon()
                raise
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            tar_bytes = entry.finish(padding(entry.size))
        if returncode != 0:
            detail = _stderr_summary(stderr_path) or f"exit code {returncode}"
            raise BackupError(f"pg_dump of {describe(settings.database_url)} failed: {detail}")
        if DUMP_COMPLETE_MARKER not in tail:
            raise BackupError("pg_dump output is incomplete: its completion line is missing")
        dump_version = version_query.result()
    finally:
        version_query.close()
    stderr_path.unlink(missing_ok=True)
    return DumpResult(
        path=str(target), size=entry.size, sha256=entry.sha256.hexdigest(), sql_bytes=sql_bytes,
        server_version=version, pg_dump_version=dump_version,
        database=describe(settings.database_url), seconds=time.monotonic() - started,
        tar_bytes=tar_bytes, contents=counter.contents(), contents_error=counter.error,
    )
