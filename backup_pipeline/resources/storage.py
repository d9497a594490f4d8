"""Where documents are read from and archives are written to."""

from __future__ import annotations

import os

import dagster as dg

from backup_pipeline.settings import Settings


class StorageResource(dg.ConfigurableResource):
    """Folders, client programs and compression; an unset field falls back to the environment
    at run time (DOCUMENTS_DIR, BACKUP_DIR, PG_BIN_DIR, BACKUP_COMPRESSION_LEVEL,
    BACKUP_COMPRESSION_THREADS), then to the defaults of CONTRACT.md."""

    documents_dir: str | None = None
    backup_dir: str | None = None
    pg_bin_dir: str | None = None
    compression_level: str | None = None
    compression_threads: int | None = None

    def settings(self, database_url: str) -> Settings:
        env = dict(os.environ)
        env["DATABASE_URL"] = database_url
        for key, value in (("DOCUMENTS_DIR", self.documents_dir),
                           ("BACKUP_DIR", self.backup_dir), ("PG_BIN_DIR", self.pg_bin_dir),
                           ("BACKUP_COMPRESSION_LEVEL", self.compression_level),
                           ("BACKUP_COMPRESSION_THREADS", self.compression_threads)):
            if value:
                env[key] = str(value)
        return Settings.from_env(env)
