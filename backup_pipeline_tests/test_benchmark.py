"""benchmarks/run.py works end to end at a tiny scale (it measures nothing worth reading here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from backup_pipeline_tests.conftest import PAGILA_DIR, REPO, RUN_TAG, DatabaseFactory


def test_benchmark_runs_at_a_tiny_scale(tmp_path: Path, pg_server_url: str,
                                         databases: DatabaseFactory):
    name = f"bp_test_{RUN_TAG}_bench"
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "run.py"), "--scale", "0.003",
             "--repeat", "1", "--levels", "fast,balanced", "--threads", "2",
             "--cache", str(tmp_path / "cache"), "--server-url", pg_server_url,
             "--database-name", name, "--json", str(tmp_path / "raw.json")],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr[-3000:]
        report = done.stdout
        for label in ("floor:", "naive:", "`backup-pipeline backup`, level fast, 2 threads",
                      "`backup-pipeline backup`, level balanced, 2 threads", "without Dagster",
                      "empty database", "restore floor:", "our restore of the level fast archive",
                      "our restore of the level balanced archive", "Dagster's fixed cost",
                      "| level | threads |", "Dataset (realistic)"):
            assert label in report
        assert "| restore time / restore floor, level balanced |" in report
        assert "| backup time / floor, level fast, 2 threads |" in report
        assert "Machine: " in report
        raw = json.loads((tmp_path / "raw.json").read_text())
        for key in ("backup_fast_t2", "backup_balanced_t2", "naive"):
            assert raw[key]["extras"][0]["archive_bytes"] > 0
        assert all(s["peak_mb"] > 0 for s in raw["backup_fast_t2"]["samples"])
        assert raw["restore_fast"]["extras"][0]["inside"] > 0
        assert list((tmp_path / "cache" / "work").glob("*")) == []  # archives removed
        with databases.admin() as conn:  # the restore cases' throwaway databases are gone
            assert conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                (f"{name}\\_r%",)).fetchall() == []
        # a second run reuses the dataset instead of building it again
        again = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "run.py"), "--scale", "0.003",
             "--repeat", "1", "--only", "floor", "--cache", str(tmp_path / "cache"),
             "--server-url", pg_server_url, "--database-name", name],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "reusing" in again.stderr
    finally:
        with databases.admin() as conn:
            leftovers = [r[0] for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{name}\\_r%",))]
            for db in (name, f"{name}_empty", *leftovers):
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_compressor_comparison_reads_a_file_once_through_every_compressor():
    pagila = PAGILA_DIR / "pagila-data.sql"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compressors.py"),
                           "--file", str(pagila)],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines()
            if line.startswith("| ISA-L") or line.startswith("| zlib")}
    assert {"ISA-L level 3", "zlib level 6", "zlib level 9"} <= set(rows)
    assert "| +0.0% |" in rows["zlib level 6"]  # the reference
