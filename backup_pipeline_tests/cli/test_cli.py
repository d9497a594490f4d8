"""The backup-pipeline command: JSON output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from backup_pipeline.catalog import history
from backup_pipeline_tests.conftest import AppEnv
from backup_pipeline_tests.helpers import leftovers, run_backup_job, run_cli


def cli_json(app_env: AppEnv, *args: str) -> dict:
    done = run_cli("--json", *args, env=app_env.environ())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_migrate_is_idempotent(app_env: AppEnv):
    assert cli_json(app_env, "migrate")["applied"] == []  # app_env migrated already
    done = run_cli("migrate", env=app_env.environ())
    assert done.returncode == 0 and "up to date" in done.stdout


def test_backup_then_list_show_verify_delete(app_env: AppEnv):
    record = cli_json(app_env, "backup", "--note", "before upgrade")
    assert record["status"] == "completed" and record["note"] == "before upgrade"
    assert record["trigger"] == "cli" and record["size_bytes"] > 0
    path = app_env.backup_dir / record["file_name"]
    listing = subprocess.run(["tar", "tzf", str(path)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert listing[0] == "manifest.json" and "database/motovaultpro.sql.gz" in listing
    assert any(name.startswith("documents/1001/") for name in listing)

    page = cli_json(app_env, "list")
    assert page["total"] == 1 and page["items"][0]["id"] == record["id"]

    shown = cli_json(app_env, "show", record["id"])
    assert shown["manifest"]["backup_id"] == record["id"] and shown["file_exists"]
    assert "members" not in shown["manifest"]

    verified = cli_json(app_env, "verify", record["id"])
    assert verified["ok"] and verified["members"] == 7
    assert cli_json(app_env, "verify", str(path))["ok"]

    deleted = cli_json(app_env, "delete", record["id"])
    assert deleted["file_removed"]
    assert leftovers(app_env.backup_dir) == []
    assert cli_json(app_env, "list")["total"] == 0


def test_verify_detects_tampering(app_env: AppEnv):
    record = run_backup_job().output_for_node("record_backup")
    path = app_env.backup_dir / record["file_name"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    done = run_cli("verify", record["id"], env=app_env.environ())
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert "backup-pipeline: error:" in done.stderr


def test_verify_by_id_checks_the_catalog_checksum(app_env: AppEnv, tmp_path: Path):
    first = run_backup_job().output_for_node("record_backup")
    second = run_backup_job().output_for_node("record_backup")
    # a valid archive, but not the one the catalog recorded under that name
    (app_env.backup_dir / first["file_name"]).write_bytes(
        (app_env.backup_dir / second["file_name"]).read_bytes())
    done = run_cli("verify", first["id"], env=app_env.environ())
    assert done.returncode == 1 and "sha256 recorded in the catalog" in done.stderr


def test_list_pages_and_filters(app_env: AppEnv):
    ids = [run_backup_job().output_for_node("record_backup")["id"] for _ in range(3)]
    history.fail(app_env.database_url, history.create(
        app_env.database_url, backup_type="safety", trigger="test")["id"], "boom")
    page1 = cli_json(app_env, "list", "--page-size", "2")
    page2 = cli_json(app_env, "list", "--page-size", "2", "--page", "2")
    page3 = cli_json(app_env, "list", "--page-size", "2", "--page", "3")
    assert page1["total"] == page2["total"] == 4 and page3["items"] == []
    seen = [r["id"] for r in page1["items"] + page2["items"]]
    assert len(set(seen)) == 4 and set(ids) <= set(seen)
    assert cli_json(app_env, "list", "--status", "failed")["total"] == 1
    assert cli_json(app_env, "list", "--type", "manual")["total"] == 3
    done = run_cli("list", "--page", "0", env=app_env.environ())
    assert done.returncode == 1 and "page must be 1 or more" in done.stderr


def test_errors_are_one_line(app_env: AppEnv):
    for args in (["show", "not-a-uuid"], ["show", "00000000-0000-0000-0000-000000000000"],
                 ["delete", "00000000-0000-0000-0000-000000000000"],
                 ["verify", "/no/such/archive.tar.gz"]):
        done = run_cli(*args, env=app_env.environ())
        assert done.returncode == 1, args
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    env = app_env.environ()
    del env["DATABASE_URL"]
    done = run_cli("list", env=env)
    assert done.returncode == 1 and "DATABASE_URL is not set" in done.stderr


def test_backup_refuses_an_unmigrated_catalog(app_env: AppEnv, databases):
    env = {**app_env.environ(), "DATABASE_URL": databases.create()}
    done = run_cli("backup", env=env)
    assert done.returncode == 1 and "backup-pipeline migrate" in done.stderr
