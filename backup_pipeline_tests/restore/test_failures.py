"""Failures after verification (safety backup, swap) leave everything as it was; restores of
only the database or only the documents leave the other alone."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from backup_pipeline.backup.service import run_backup
from backup_pipeline.errors import UnavailableError
from backup_pipeline.postgres import database_name, with_database
from backup_pipeline.restore import database, runs, service, settle
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline_tests.conftest import psql
from backup_pipeline_tests.restore.helpers import database_fingerprint, tree_fingerprint


def state(settings) -> tuple:
    siblings = sorted(p.name for p in settings.documents_dir.parent.iterdir())
    return (database_fingerprint(settings.database_url), tree_fingerprint(settings.documents_dir),
            siblings)


def test_failed_swap_puts_documents_and_connections_back(app_env, pg_server_url):
    settings = app_env.settings
    backup = run_backup(settings)
    psql(settings.database_url, "-c", "DELETE FROM film_actor WHERE actor_id < 50")
    (settings.documents_dir / "1002" / "empty.txt").unlink()
    plan = service.claim(settings, backup["id"], dry_run=False)
    checked = service.verify(settings, plan)
    service.safety_backup(settings, plan, lambda: run_backup(
        settings, backup_type="safety", trigger="restore"))
    service.load_database(settings, plan, checked)
    before = state(settings)
    # the name the live database would be renamed to is taken: the rename transaction fails
    # after the catalog copy, the session cut-off and the documents swap have happened
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{plan.old_database}"')
    try:
        with pytest.raises(RestoreError, match="restore failed at step swap: .*already exists"):
            service.swap(settings, plan)
        assert state(settings)[:2] == before[:2]
        assert state(settings)[2] == ["backups", "dagster_home", "documents"]
        with psycopg.connect(pg_server_url) as admin:
            names = {r[0]: r[1] for r in admin.execute(
                "SELECT datname, datallowconn FROM pg_database WHERE datname LIKE %s",
                (database_name(settings.database_url) + "%",)).fetchall()}
        assert names == {database_name(settings.database_url): True, plan.old_database: True}
        status = runs.get(settings.database_url, plan.restore_id)
        assert (status["state"], status["step"]) == ("failed", "swap")
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{plan.old_database}"')


def test_failed_safety_backup_changes_nothing(app_env):
    settings = app_env.settings
    backup = run_backup(settings)
    # a document name that is not UTF-8 makes every backup fail, the safety backup too
    bad = settings.documents_dir / "1001" / b"bad-\xff-name".decode("utf-8", "surrogateescape")
    bad.write_bytes(b"x")
    before = state(settings)
    with pytest.raises(RestoreError, match="restore failed at step safety_backup: .*not UTF-8"):
        service.run_restore(settings, backup["id"], dry_run=False)
    assert state(settings) == before
    status = runs.latest(settings.database_url)
    assert (status["state"], status["step"]) == ("failed", "safety_backup")


def test_database_only_and_documents_only(app_env):
    settings = app_env.settings
    url = settings.database_url
    backup = run_backup(settings)
    original_db, original_docs = database_fingerprint(url), tree_fingerprint(settings.documents_dir)
    psql(url, "-c", "UPDATE staff SET username = 'changed'")
    (settings.documents_dir / "1003" / "archive.zip").write_bytes(b"changed")
    changed_db, changed_docs = database_fingerprint(url), tree_fingerprint(settings.documents_dir)

    service.run_restore(settings, backup["id"], dry_run=False, scope="documents")
    assert (database_fingerprint(url), tree_fingerprint(settings.documents_dir)) == \
        (changed_db, original_docs)

    (settings.documents_dir / "1003" / "archive.zip").write_bytes(b"changed")
    record = service.run_restore(settings, backup["id"], dry_run=False, scope="database")
    assert (database_fingerprint(url), tree_fingerprint(settings.documents_dir)) == \
        (original_db, changed_docs)
    assert record["scope"] == "database"
    with psycopg.connect(with_database(url, "postgres")) as conn:
        assert conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s",
                            (database_name(url),)).fetchone()[0] is True


def test_symlinked_documents_dir_keeps_its_link(app_env, tmp_path):
    real = app_env.documents_dir.rename(tmp_path / "real-documents")
    app_env.documents_dir.symlink_to(real)
    settings = app_env.settings
    backup = run_backup(settings)
    (real / "1001" / "invoice-2024.txt").write_bytes(b"changed")
    service.run_restore(settings, backup["id"], dry_run=False, scope="documents")
    assert app_env.documents_dir.is_symlink() and app_env.documents_dir.resolve() == real
    assert (real / "1001" / "invoice-2024.txt").read_bytes().startswith(b"Invoice 2024")


def allow_connections(pg_server_url: str, name: str, allow: bool | None = None) -> bool:
    """Set (when `allow` is given) and return whether `name` accepts new connections."""
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        if allow is not None:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {allow}')
        return admin.execute("SELECT datallowconn FROM pg_database WHERE datname = %s",
                             (name,)).fetchone()[0]


def test_a_database_a_crashed_swap_left_closed_is_reopened_by_the_next_backup(
        app_env, pg_server_url):
    settings = app_env.settings
    live = database_name(settings.database_url)
    backup = run_backup(settings)

    # closed by an operator: no restore's mark, so it stays closed
    allow_connections(pg_server_url, live, False)
    with pytest.raises(UnavailableError, match="not currently accepting connections"):
        run_backup(settings)
    assert not allow_connections(pg_server_url, live)
    allow_connections(pg_server_url, live, True)

    # a restore wrote its mark, closed the database for its swap and died there
    plan = service.claim(settings, backup["id"], dry_run=False)
    os.makedirs(plan.staging_dir)
    runs.fail(settings.database_url, plan.restore_id, "interrupted (simulated crash)")
    mark = settle.mark_closed(Path(plan.staging_dir), live)
    allow_connections(pg_server_url, live, False)
    # while a swap holds the lock, nothing is reopened
    with database.admin_connect(settings.database_url) as swapping:
        database.hold_swap_lock(swapping, live)
        with pytest.raises(UnavailableError, match="not currently accepting connections"):
            run_backup(settings)
        assert not allow_connections(pg_server_url, live)
    assert run_backup(settings)["status"] == "completed"
    assert allow_connections(pg_server_url, live) and not mark.exists()

    # a mark left after the database was reopened by hand is forgotten by the next backup
    mark = settle.mark_closed(Path(plan.staging_dir), live)
    assert run_backup(settings)["status"] == "completed" and not mark.exists()
    service.cleanup(settings, plan)
