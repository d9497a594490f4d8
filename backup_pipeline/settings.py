"""The environment the pipeline runs in, read once per use so tests and runs see the current one."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from backup_pipeline.archive.compression import Compression
from backup_pipeline.errors import ConfigError

ARCHIVE_PREFIX = "motovaultpro_backup_"
DUMP_MEMBER = "database/motovaultpro.sql.gz"
# What a restore or import unpacks at most (SQL and documents together) unless
# RESTORE_MAX_BYTES says otherwise: an archive's own declarations cannot raise it.
DEFAULT_RESTORE_MAX_BYTES = 1 << 40


@dataclass(frozen=True)
class Settings:
    database_url: str
    documents_dir: Path
    backup_dir: Path
    pg_bin_dir: Path | None = None
    # RESTORE_MAX_BYTES: the most a restore or import unpacks (None: the default above)
    restore_max_bytes: int | None = None
    # RESTORE_UNTRUSTED_OWNER: owns the objects of archives not made here (see restore.roles)
    untrusted_owner: str | None = None
    # BACKUP_COMPRESSION_LEVEL and BACKUP_COMPRESSION_THREADS
    compression: Compression = field(default_factory=lambda: Compression.from_env({}))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        url = env.get("DATABASE_URL", "").strip()
        if not url:
            raise ConfigError("DATABASE_URL is not set")
        pg_bin = env.get("PG_BIN_DIR", "").strip()
        max_bytes = env.get("RESTORE_MAX_BYTES", "").strip()
        if max_bytes and (not max_bytes.isdigit() or int(max_bytes) < 1):
            raise ConfigError(f"RESTORE_MAX_BYTES must be a positive number of bytes, not "
                              f"{max_bytes!r}")
        return cls(
            database_url=url,
            documents_dir=Path(env.get("DOCUMENTS_DIR") or "./data/documents").absolute(),
            backup_dir=Path(env.get("BACKUP_DIR") or "./data/backups").absolute(),
            pg_bin_dir=Path(pg_bin) if pg_bin else None,
            restore_max_bytes=int(max_bytes) if max_bytes else None,
            untrusted_owner=env.get("RESTORE_UNTRUSTED_OWNER", "").strip() or None,
            compression=Compression.from_env(env),
        )

    @property
    def max_unpack_bytes(self) -> int:
        return self.restore_max_bytes or DEFAULT_RESTORE_MAX_BYTES

    def pg_tool(self, name: str) -> str:
        """Path of a PostgreSQL client program: from PG_BIN_DIR when set, else from PATH."""
        if self.pg_bin_dir is not None:
            candidate = self.pg_bin_dir / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
            raise ConfigError(f"{name} not found in PG_BIN_DIR={self.pg_bin_dir}")
        found = shutil.which(name)
        if found is None:
            raise ConfigError(f"{name} not found on PATH (install the PostgreSQL client programs)")
        return found
