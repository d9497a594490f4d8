"""Every compression level and thread count makes the seed's .tar.gz: read by tar, gzip -t,
gunzip and Python's tarfile, verified and restored by our own readers (ISA-L)."""

from __future__ import annotations

import dataclasses
import gzip
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive import reader
from backup_pipeline.archive.compression import CHUNK, Compression
from backup_pipeline.backup.service import run_backup
from backup_pipeline.drills import service as drills
from backup_pipeline_tests.archive.test_compression import sql_like
from backup_pipeline_tests.conftest import AppEnv
from backup_pipeline_tests.helpers import run_backup_job, tree_fingerprint


def add_large_documents(app_env: AppEnv) -> None:
    """Text of several chunks, then a photo: compressed members, then stored ones."""
    folder = app_env.documents_dir / "1004"
    folder.mkdir()
    (folder / "a-logbook.txt").write_bytes(sql_like(3 * CHUNK + 777, seed=4))
    (folder / "b-photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(CHUNK + 3))
    (folder / "c-notes.txt").write_bytes(sql_like(CHUNK // 3, seed=5))


@pytest.mark.parametrize("level,threads", [("fast", 1), ("fast", 2), ("balanced", 1),
                                           ("balanced", 2), ("small", 2), ("1", 2)])
def test_every_level_makes_an_archive_every_reader_reads(app_env: AppEnv, tmp_path: Path,
                                                          level: str, threads: int):
    add_large_documents(app_env)
    settings = dataclasses.replace(app_env.settings, compression=Compression(level, threads))
    row = run_backup(settings, trigger="test")
    archive = app_env.backup_dir / row["file_name"]

    subprocess.run(["gzip", "-t", str(archive)], check=True)
    listing = subprocess.run(["tar", "tzf", str(archive)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert listing[:2] == [mf.MANIFEST_NAME, mf.DUMP_MEMBER]
    gunzipped = subprocess.run(["gunzip", "-c", str(archive)], capture_output=True,
                               check=True).stdout
    assert len(gunzipped) % tarfile.RECORDSIZE == 0

    extract = tmp_path / "extract"
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(extract, filter="data")
    sql = gzip.decompress((extract / mf.DUMP_MEMBER).read_bytes())
    assert mf.DUMP_COMPLETE_MARKER in sql[-300:]
    assert tree_fingerprint(extract / "documents") == tree_fingerprint(app_env.documents_dir)

    assert reader.verify(archive).dump_complete
    drill = drills.run_drill(settings, row["id"])
    assert drill.ok, drill.description


def test_a_smaller_level_makes_a_smaller_archive(app_env: AppEnv):
    add_large_documents(app_env)
    sizes = {}
    for level in ("fast", "balanced", "small"):
        row = run_backup(dataclasses.replace(app_env.settings, compression=Compression(level, 2)),
                         trigger="test")
        sizes[level] = row["size_bytes"]
    assert sizes["small"] < sizes["balanced"] < sizes["fast"]


def test_the_job_compresses_as_the_environment_says(app_env: AppEnv,
                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BACKUP_COMPRESSION_LEVEL", "fast")
    monkeypatch.setenv("BACKUP_COMPRESSION_THREADS", "1")
    result = run_backup_job(trigger="test")
    assert result.success
    outputs = [e for e in result.all_node_events
               if e.is_successful_output and e.step_key == "dump_database"]
    metadata = outputs[0].event_specific_data.metadata
    assert metadata["compression"].value == "fast (ISA-L level 3, 1 threads)"


def test_a_bad_level_fails_the_backup_before_anything_is_written(app_env: AppEnv,
                                                                 monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BACKUP_COMPRESSION_LEVEL", "maximum")
    result = run_backup_job(trigger="test")
    assert not result.success
    assert not app_env.backup_dir.exists() or not any(app_env.backup_dir.iterdir())
