"""Restore drills: a good backup passes and leaves nothing behind; a manifest whose row counts
disagree with its dump fails naming the table; a killed drill's scratch database is dropped by
the next drill, an operator's look-alike never."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from backup_pipeline.archive import manifest as mf
from backup_pipeline.backup.service import run_backup
from backup_pipeline.drills import service
from backup_pipeline.postgres import database_name, with_database
from backup_pipeline_tests.conftest import AppEnv
from backup_pipeline_tests.helpers import CLI, run_cli
from backup_pipeline_tests.restore.helpers import (
    manifest_for,
    read_archive,
    register,
    write_archive,
)


def scratch_databases(url: str) -> list[str]:
    live = database_name(url)
    with psycopg.connect(with_database(url, "postgres")) as conn:
        return [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1",
            (f"{live}_drill_",)).fetchall()]


def loader_roles(url: str, drill_id: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = %s",
            ("bp_loader_" + drill_id.replace("-", ""),)).fetchall()]


def assert_nothing_left(app_env: AppEnv) -> None:
    assert scratch_databases(app_env.database_url) == []
    root = app_env.backup_dir / service.DRILL_STAGING
    assert not root.exists() or list(root.iterdir()) == []
    with psycopg.connect(app_env.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM backup.restore_databases").fetchone()[0] == 0


def test_a_good_backup_passes_and_leaves_nothing(app_env: AppEnv):
    backup = run_backup(app_env.settings, backup_type="manual", trigger="test")

    result = service.run_drill(app_env.settings)

    assert result.ok, result.description
    assert result.backup_id == backup["id"]
    assert result.comparison.counts_in_manifest
    assert result.comparison.tables["public.actor"] == {"expected": 200, "actual": 200}
    assert result.comparison.documents_checked == backup["document_count"] > 0
    assert result.rto_seconds > 0
    assert_nothing_left(app_env)
    assert loader_roles(app_env.database_url, result.drill_id) == []


def wrong_count_archive(app_env: AppEnv, tmp_path: Path, counts: bool = True,
                        table: str = "public.actor") -> str:
    """A real backup whose manifest says one row more in `table` (or has no counts)."""
    backup = run_backup(app_env.settings, backup_type="manual", trigger="test")
    manifest, members = read_archive(app_env.backup_dir / backup["file_name"])
    if counts:
        manifest["contents"]["tables"][table] += 1
        manifest["contents"]["table_rows"] += 1
    else:
        del manifest["contents"]
    path = write_archive(tmp_path / "motovaultpro_backup_edited.tar.gz",
                         manifest_for(members, manifest, manifest["source"]["sql_bytes"]),
                         members)
    return register(app_env.settings, path)


def test_counts_that_disagree_with_the_dump_fail_and_name_the_table(app_env: AppEnv,
                                                                     tmp_path: Path):
    backup_id = wrong_count_archive(app_env, tmp_path)

    result = service.run_drill(app_env.settings, backup_id)

    assert not result.ok
    assert result.comparison.mismatches == [
        "table public.actor: 200 rows restored, the manifest says 201"]
    assert "public.actor" in result.description
    assert_nothing_left(app_env)


def test_an_archive_without_counts_still_drills(app_env: AppEnv, tmp_path: Path):
    backup_id = wrong_count_archive(app_env, tmp_path, counts=False)

    result = service.run_drill(app_env.settings, backup_id)

    assert result.ok, result.description
    assert not result.comparison.counts_in_manifest and result.comparison.tables == {}
    assert "no row counts" in result.description
    assert result.comparison.documents_checked > 0


def test_a_document_changed_on_its_way_to_disk_fails(app_env: AppEnv, tmp_path: Path):
    """What landed is compared, not what was read: a document the manifest lists under a
    different sha256 than its member's fails (stage_archive refuses it already)."""
    backup = run_backup(app_env.settings, backup_type="manual", trigger="test")
    manifest, members = read_archive(app_env.backup_dir / backup["file_name"])
    name = next(n for n in members if n.startswith(mf.DOCUMENTS_PREFIX) and members[n])
    members[name] = bytes([members[name][0] ^ 1]) + members[name][1:]
    fixed = manifest_for(members, manifest, manifest["source"]["sql_bytes"])
    fixed["members"] = [m if m["path"] != name else
                        next(o for o in manifest["members"] if o["path"] == name)
                        for m in fixed["members"]]
    path = write_archive(tmp_path / "motovaultpro_backup_doc.tar.gz", fixed, members)

    result = service.run_drill(app_env.settings, register(app_env.settings, path))

    assert not result.ok and name in (result.error or "")
    assert_nothing_left(app_env)


def test_the_cli_prints_the_result_and_fails_with_the_drill(app_env: AppEnv, tmp_path: Path):
    run_backup(app_env.settings, backup_type="manual", trigger="test")
    done = run_cli("drill", "--json", env=app_env.environ())
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["ok"] is True and out["rto_seconds"] > 0 and "public.actor" in out["tables"]

    bad = wrong_count_archive(app_env, tmp_path)
    done = run_cli("drill", bad, "--json", env=app_env.environ())
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert out["ok"] is False and out["backup_id"] == bad
    assert out["tables"]["public.actor"] == {"expected": 201, "actual": 200}
    assert "public.actor" in done.stderr


def fake_psql(folder: Path, started: Path) -> Path:
    """A psql (for PG_BIN_DIR) that never reads its input: the drill's load blocks in it."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in ("pg_dump",):
        (folder / tool).symlink_to(shutil.which(tool))
    script = folder / "psql"
    script.write_text(f"#!/bin/bash\ntouch {started}\nsleep 600\n")
    script.chmod(0o755)
    return folder


def test_a_killed_drill_is_swept_by_the_next_and_a_look_alike_stays(app_env: AppEnv,
                                                                     tmp_path: Path):
    run_backup(app_env.settings, backup_type="manual", trigger="test")
    live = database_name(app_env.database_url)
    look_alike = f"{live}_drill_0badf00d"
    with psycopg.connect(with_database(app_env.database_url, "postgres"),
                         autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{look_alike}"')
    try:
        started = tmp_path / "psql-started"
        env = {**app_env.environ(), "PG_BIN_DIR": str(fake_psql(tmp_path / "bin", started))}
        victim = subprocess.Popen([CLI, "drill"], env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not started.exists():
                assert time.monotonic() < deadline and victim.poll() is None, "psql never ran"
                time.sleep(0.05)
        finally:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        left = [d for d in scratch_databases(app_env.database_url) if d != look_alike]
        assert len(left) == 1
        assert list((app_env.backup_dir / service.DRILL_STAGING).iterdir()) != []

        result = service.run_drill(app_env.settings)

        assert result.ok, result.description
        assert scratch_databases(app_env.database_url) == [look_alike]
        assert list((app_env.backup_dir / service.DRILL_STAGING).iterdir()) == []
    finally:
        with psycopg.connect(with_database(app_env.database_url, "postgres"),
                             autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{look_alike}"')


def test_a_running_drill_keeps_its_scratch_database_from_a_restore_sweep(app_env: AppEnv):
    """Another process's sweep (a restore's claim, a second drill) leaves a drill that is
    still running alone: its liveness lock is held."""
    from backup_pipeline.catalog import liveness
    from backup_pipeline.restore import siblings

    url = app_env.database_url
    drill_id = "6f1c2b1e-0000-4000-8000-000000000001"
    name = f"{database_name(url)}_drill_6f1c2b1e"
    liveness.hold(url, drill_id, kind="drill")
    try:
        siblings.record(url, name, drill_id)
        assert siblings.sweep(url) == []
        assert service.sweep(app_env.settings) == []
    finally:
        liveness.release(drill_id, kind="drill")
    assert siblings.sweep(url) == [name]


def test_drill_job_records_the_check_in_the_instance_history(app_env: AppEnv, tmp_path: Path):
    import dagster as dg

    from backup_pipeline.checks import last_drill
    from backup_pipeline.definitions import defs

    backup = run_backup(app_env.settings, backup_type="manual", trigger="test")
    bad = wrong_count_archive(app_env, tmp_path)
    job = defs.get_job_def("drill_job")
    with dg.DagsterInstance.ephemeral() as instance:
        good = job.execute_in_process(instance=instance, run_config={"ops": {
            "run_restore_drill": {"config": {"backup_id": backup["id"]}}}})
        assert good.success
        drill = last_drill(instance)
        assert drill.passed and drill.backup_id == backup["id"] and drill.rto_seconds > 0
        failed = job.execute_in_process(instance=instance, raise_on_error=False, run_config={
            "ops": {"run_restore_drill": {"config": {"backup_id": bad}}}})
        assert not failed.success
        drill = last_drill(instance)
        assert not drill.passed and drill.backup_id == bad
        assert "public.actor" in drill.description


def test_an_uploaded_archive_drills_as_a_temporary_role_and_leaves_none(app_env: AppEnv,
                                                                        make_role,
                                                                        tmp_path: Path):
    import dataclasses

    settings = dataclasses.replace(app_env.settings, untrusted_owner=make_role("owner"))
    backup = run_backup(settings, backup_type="manual", trigger="test")
    copy = tmp_path / "motovaultpro_backup_uploaded.tar.gz"
    shutil.copyfile(app_env.backup_dir / backup["file_name"], copy)
    uploaded = register(settings, copy, "uploaded")

    result = service.run_drill(settings, uploaded)

    assert result.ok, result.description
    assert result.comparison.tables["public.actor"] == {"expected": 200, "actual": 200}
    assert loader_roles(app_env.database_url, result.drill_id) == []
    assert_nothing_left(app_env)
    with psycopg.connect(app_env.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM backup.restore_roles").fetchone()[0] == 0
