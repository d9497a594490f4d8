"""backup_job end to end on pagila: the archive restores to the same database and documents."""

from __future__ import annotations

import gzip
import stat
import subprocess
import tarfile
from pathlib import Path

import dagster as dg

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive import reader
from backup_pipeline.catalog import history
from backup_pipeline.postgres import client_env
from backup_pipeline_tests.conftest import AppEnv
from backup_pipeline_tests.helpers import (
    leftovers,
    run_backup_job,
    schema_dump,
    table_fingerprints,
    tree_fingerprint,
)


def test_round_trip_pagila_and_documents(app_env: AppEnv, databases, tmp_path: Path):
    (app_env.documents_dir / "1001" / "link").symlink_to("/etc/passwd")
    result = run_backup_job(trigger="test", note="round trip")
    assert result.success
    row = result.output_for_node("record_backup")
    assert row["status"] == "completed" and row["backup_type"] == "manual"
    assert row["document_count"] == 6 and row["dagster_run_id"] == result.run_id

    archive = app_env.backup_dir / row["file_name"]
    assert archive.name.startswith("motovaultpro_backup_") and archive.name.endswith(".tar.gz")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE(app_env.backup_dir.stat().st_mode) == 0o700
    assert leftovers(app_env.backup_dir) == [archive.name]
    assert reader.verify(archive).dump_complete

    listing = subprocess.run(["tar", "tzf", str(archive)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert listing[:2] == ["manifest.json", mf.DUMP_MEMBER]
    assert "documents/1001/invoice-2024.txt" in listing
    assert not any("link" in name for name in listing)  # symlinks never enter an archive

    # the dump loads into an empty database with ON_ERROR_STOP and reproduces pagila exactly
    target = databases.create()
    extract = tmp_path / "extract"
    extract.mkdir()
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(extract, filter="data")
    sql = gzip.decompress((extract / mf.DUMP_MEMBER).read_bytes())
    conninfo, env = client_env(target)
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo],
                   input=sql, env=env, check=True, capture_output=True)
    assert schema_dump(target) == schema_dump(app_env.database_url)
    assert table_fingerprints(target) == table_fingerprints(app_env.database_url)
    assert "backup" not in sql.decode().split("CREATE SCHEMA", 1)[-1][:20]

    # documents come back byte for byte
    assert tree_fingerprint(extract / "documents") == tree_fingerprint(app_env.documents_dir)

    manifest = reader.read_manifest(archive)
    assert manifest["backup_id"] == row["id"] and manifest["totals"]["documents"] == 6
    assert manifest["source"]["server_version"].startswith("15")


def test_backup_reports_metadata_and_asset(app_env: AppEnv):
    instance = dg.DagsterInstance.ephemeral()
    result = run_backup_job(instance)
    assert result.success
    materializations = result.asset_materializations_for_node("record_backup")
    assert [m.asset_key for m in materializations] == [dg.AssetKey("motovaultpro_backup")]
    metadata = materializations[0].metadata
    for key in ("archive_bytes", "database_bytes", "documents", "duration_seconds"):
        assert key in metadata
    assert metadata["documents"].value == 6
    dump_meta = result.get_step_success_events()  # every step succeeded
    assert {e.step_key for e in dump_meta} == {
        "start_backup", "dump_database", "collect_documents", "write_manifest",
        "build_archive", "record_backup", "schedule_retention", "offsite_copy"}


def test_two_backups_in_one_second_get_distinct_names(app_env: AppEnv):
    first = run_backup_job().output_for_node("record_backup")
    second = run_backup_job().output_for_node("record_backup")
    assert first["file_name"] != second["file_name"]
    assert len(leftovers(app_env.backup_dir)) == 2


def test_empty_documents_dir(app_env: AppEnv):
    for path in sorted(app_env.documents_dir.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    result = run_backup_job()
    assert result.success
    row = history.get(app_env.database_url, result.output_for_node("record_backup")["id"])
    assert row["document_count"] == 0 and row["status"] == "completed"


def test_archive_name_skips_a_name_the_catalog_still_holds(app_env: AppEnv):
    """An archive removed by hand leaves its row: a backup in the same second must not take
    its name (the catalog's file_name is unique)."""
    from backup_pipeline.backup import service

    first = run_backup_job().output_for_node("record_backup")
    (app_env.backup_dir / first["file_name"]).unlink()
    started = history.get(app_env.database_url, first["id"])["started_at"]
    name = service.archive_name(started)
    assert name == first["file_name"]
    taken = history.file_names_like(app_env.database_url, name.removesuffix(".tar.gz"))
    temp = app_env.backup_dir / "temp"
    temp.write_bytes(b"x")
    final = service._publish(temp, app_env.backup_dir, name, taken)
    assert final.name == name.replace(".tar.gz", "_2.tar.gz")
