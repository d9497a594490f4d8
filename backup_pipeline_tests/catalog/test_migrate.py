"""The migration runner: versioned, idempotent, safe when several processes run it at once."""

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from backup_pipeline.api import create_app
from backup_pipeline.catalog.migrate import available, migrate, pending
from backup_pipeline.cli import dagster_run
from backup_pipeline.errors import ConfigError
from backup_pipeline_tests.helpers import run_backup_job, run_cli


def test_migrations_apply_once(databases):
    url = databases.create()
    assert pending(url) == [f"{m.version:03d}_{m.name}" for m in available()]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: migrate(url), range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(available())]
    assert pending(url) == [] and migrate(url) == []
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'backup'")}
    assert {"backup_schedules", "backup_history", "backup_settings"} <= tables


def test_a_catalog_from_newer_code_is_refused_everywhere(app_env, tmp_path):
    """Version 999 in schema_migrations: every command that uses the catalog says so in one
    line naming both versions, and changes nothing."""
    url = app_env.database_url
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO backup.schema_migrations (version, name)"
                     " VALUES (999, 'from_the_future')")
    latest = available()[-1]
    expected = (f"the catalog is at version 999 (999_from_the_future) but this backup_pipeline "
                f"knows up to {latest.version} ({latest.version:03d}_{latest.name}): "
                "upgrade backup_pipeline")
    archive = tmp_path / "some.tar.gz"
    archive.write_bytes(b"not checked: the catalog is refused first")
    env = app_env.environ()
    for command in (["migrate"], ["--json", "backup"], ["list"], ["import", str(archive)],
                    ["restore", str(uuid.uuid4()), "--preview"], ["schedules", "list"],
                    ["settings", "get"]):
        done = run_cli(*command, env=env)
        assert done.returncode == 1, (command, done.stdout)
        assert done.stderr == f"backup-pipeline: error: {expected}\n", command
    with pytest.raises(ConfigError, match=re.escape(expected)):
        migrate(url)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        create_app({**env, "ADMIN_API_TOKEN": "t"})
    result = run_backup_job()  # the op, as a schedule or the UI would run it
    assert not result.success
    assert expected in dagster_run.failure_message(result)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM backup.backup_history").fetchone()[0] == 0
        assert conn.execute("SELECT max(version) FROM backup.schema_migrations"
                            " WHERE version < 999").fetchone()[0] == latest.version
    assert not app_env.backup_dir.exists() or not any(app_env.backup_dir.iterdir())
