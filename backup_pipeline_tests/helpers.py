"""Shared test helpers: running backup_job, fingerprints of databases and folders."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg

from backup_pipeline.definitions import defs
from backup_pipeline.postgres import client_env

CLI = str(Path(sys.executable).parent / "backup-pipeline")
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def run_backup_job(instance: dg.DagsterInstance | None = None, **config: Any
                   ) -> dg.ExecuteInProcessResult:
    job = defs.get_job_def("backup_job")
    run_config = {**QUIET, "ops": {"start_backup": {"config": config}}} if config else QUIET
    return job.execute_in_process(run_config=run_config,
                                  instance=instance or dg.DagsterInstance.ephemeral(),
                                  raise_on_error=False)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True,
                          env=env or dict(os.environ), stdin=subprocess.DEVNULL, timeout=300)


def schema_dump(url: str) -> str:
    conninfo, env = client_env(url)
    out = subprocess.run(["pg_dump", "--schema-only", "--exclude-schema=backup",
                          "--no-owner", "-d", conninfo],
                         capture_output=True, text=True, env=env, check=True).stdout
    return "\n".join(line for line in out.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict", "-- Dumped")))


def table_fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent hash of every table's rows (schema backup excluded)."""
    out: dict[str, tuple[int, str]] = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog',"
            " 'information_schema', 'backup') AND n.nspname NOT LIKE 'pg_toast%'"
            " ORDER BY 1").fetchall()
        for (table,) in tables:
            rows = sorted(str(r) for r in conn.execute(f"SELECT t::text FROM {table} t"))
            out[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return out


def tree_fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def leftovers(backup_dir: Path) -> list[str]:
    """Every file under BACKUP_DIR (staging included)."""
    if not backup_dir.exists():
        return []
    return sorted(str(p.relative_to(backup_dir)) for p in backup_dir.rglob("*") if p.is_file())
