"""`import PATH`: a valid archive from elsewhere joins the catalog as `uploaded` and restores
(with psql restricted to SQL); bad ones are rejected and nothing is stored."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import uuid

import psycopg
import pytest

from backup_pipeline.backup.inventory import verify
from backup_pipeline.backup.service import run_backup
from backup_pipeline.catalog import history
from backup_pipeline.cli import main
from backup_pipeline.errors import ArchiveError
from backup_pipeline.restore import importer, service
from backup_pipeline.restore.errors import RestoreBusyError, RestoreError
from backup_pipeline_tests.conftest import psql
from backup_pipeline_tests.helpers import CLI, schema_dump, table_fingerprints
from backup_pipeline_tests.restore.helpers import tree_fingerprint
from backup_pipeline_tests.restore.test_refusals import build


def catalog_state(settings) -> tuple:
    rows = history.list_page(settings.database_url, page_size=100)["items"]
    files = sorted(p.name for p in settings.backup_dir.iterdir() if p.is_file())
    return sorted(r["id"] for r in rows), files


def test_import_then_restore_an_uploaded_archive(app_env, tmp_path, capsys, make_role,
                                                 monkeypatch):
    """pagila's objects belong to a superuser: restored from an import, they belong to
    RESTORE_UNTRUSTED_OWNER (test_untrusted has the details); schema and data are the same."""
    owner = make_role("owner")
    monkeypatch.setenv("RESTORE_UNTRUSTED_OWNER", owner)
    settings = dataclasses.replace(app_env.settings, untrusted_owner=owner)
    url = settings.database_url
    # pagila gives schema public to postgres; restored, it stays pg_database_owner's as made
    psql(url, "-c", "ALTER SCHEMA public OWNER TO pg_database_owner")
    made_elsewhere = run_backup(settings)
    exported = shutil.copy(settings.backup_dir / made_elsewhere["file_name"], tmp_path)
    state = schema_dump(url), table_fingerprints(url), tree_fingerprint(settings.documents_dir)
    history.delete(url, made_elsewhere["id"])
    (settings.backup_dir / made_elsewhere["file_name"]).unlink()

    assert main(["import", str(exported), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["backup_type"] == "uploaded" and record["status"] == "completed"
    assert record["trigger"] == "import" and made_elsewhere["id"] in record["note"]
    assert record["sha256"] == made_elsewhere["sha256"]
    assert record["document_count"] == made_elsewhere["document_count"]
    assert verify(settings, record["id"])["ok"]
    assert list((settings.backup_dir / importer.IMPORT_STAGING).iterdir()) == []
    with pytest.raises(RestoreError, match=f"already in the catalog as backup {record['id']}"):
        importer.import_archive(settings, exported)

    psql(url, "-c", "UPDATE customer SET email = NULL WHERE customer_id > 100")
    (settings.documents_dir / "1001" / "photo.jpg").unlink()
    result = service.run_restore(settings, record["id"], dry_run=False)
    assert result["state"] == "completed"
    assert (schema_dump(url), table_fingerprints(url),
            tree_fingerprint(settings.documents_dir)) == state


@pytest.mark.parametrize("case", ["truncated", "flipped_dump", "extra_member", "dotdot",
                                  "absolute", "symlink", "device", "sql_bomb", "pax_bomb",
                                  "shell_escape", "file_below_file", "directory_at_file",
                                  "directory_below_file"])
def test_bad_archives_are_rejected_storing_nothing(app_env, tmp_path, case):
    settings = app_env.settings
    archive, message = build(tmp_path, case)
    settings.backup_dir.mkdir(exist_ok=True)
    before = catalog_state(settings)
    messages = message if isinstance(message, tuple) else (message,)
    with pytest.raises(ArchiveError) as error:
        importer.import_archive(settings, archive)
    assert any(m in str(error.value) for m in messages), str(error.value)
    assert catalog_state(settings) == before
    assert list((settings.backup_dir / importer.IMPORT_STAGING).iterdir()) == []
    assert not (tmp_path / "owned").exists()


def test_import_refused_while_a_restore_runs(app_env, tmp_path, capsys):
    settings = app_env.settings
    backup = run_backup(settings)
    exported = shutil.copy(settings.backup_dir / backup["file_name"], tmp_path)
    service.claim(settings, backup["id"], dry_run=False)
    with pytest.raises(RestoreBusyError, match="an import is refused: restore"):
        importer.import_archive(settings, exported)
    assert main(["import", str(tmp_path / "missing.tar.gz")]) == 1
    assert "no archive at" in capsys.readouterr().err


def test_a_taken_file_is_moved_not_copied(app_env):
    """The upload's quarantine file becomes the archive itself (same inode): written once.
    A rejected one is gone as well, and nothing is stored."""
    settings = app_env.settings
    made = run_backup(settings)
    quarantine = settings.backup_dir / ".upload"
    quarantine.mkdir(mode=0o700)
    owned = quarantine / "incoming.tar.gz"
    shutil.copy(settings.backup_dir / made["file_name"], owned)
    inode = owned.stat().st_ino
    history.delete(settings.database_url, made["id"])
    (settings.backup_dir / made["file_name"]).unlink()

    record = importer.import_archive(settings, owned, take=True)
    stored = settings.backup_dir / record["file_name"]
    assert stored.stat().st_ino == inode and not owned.exists()
    assert record["sha256"] == made["sha256"] and verify(settings, record["id"])["ok"]

    before = catalog_state(settings)
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    owned.write_bytes(bytes(damaged))
    with pytest.raises(ArchiveError):
        importer.import_archive(settings, owned, take=True)
    assert not owned.exists() and catalog_state(settings) == before
    assert list((settings.backup_dir / importer.IMPORT_STAGING).iterdir()) == []


@pytest.mark.parametrize("case", ["file_below_file", "directory_at_file", "directory_below_file"])
def test_verify_refuses_conflicting_paths(tmp_path, case):
    archive, message = build(tmp_path, case)
    with pytest.raises(ArchiveError, match=re.escape(message)):
        verify(None, str(archive))


def _waiting_on_locks(url: str, app_name: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                            " AND wait_event_type = 'Lock'", (app_name,)).fetchone()[0]


def test_two_concurrent_imports_of_one_archive_store_it_once(app_env, tmp_path):
    """Two `import` processes of the same file: the test holds backup_history locked until
    both have checked the archive and are waiting (to look for a duplicate, or for the other
    import), so both reach the duplicate check together. One wins; the other is refused."""
    settings = app_env.settings
    made = run_backup(settings)
    archive = shutil.copy(settings.backup_dir / made["file_name"], tmp_path / "incoming.tar.gz")
    history.delete(settings.database_url, made["id"])
    (settings.backup_dir / made["file_name"]).unlink()
    app_name = f"bp-import-test-{uuid.uuid4().hex[:8]}"
    env = {**app_env.environ(), "PGAPPNAME": app_name}
    with psycopg.connect(settings.database_url) as blocker:
        blocker.execute("LOCK TABLE backup.backup_history IN ACCESS EXCLUSIVE MODE")
        imports = [subprocess.Popen([CLI, "--json", "import", str(archive)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for _ in range(2)]
        try:
            deadline = time.monotonic() + 240  # a bound for a hung test, not an assertion
            while _waiting_on_locks(settings.database_url, app_name) < 2:
                assert all(p.poll() is None for p in imports), [p.communicate() for p in imports]
                assert time.monotonic() < deadline, "the imports never reached the check"
                time.sleep(0.05)
        except BaseException:
            for p in imports:
                p.kill()
            raise
    outcomes = sorted((p.wait(timeout=300), *p.communicate()) for p in imports)
    [(won, out, _), (lost, _, error)] = outcomes
    assert won == 0 and lost == 1
    record = json.loads(out)
    assert error == (f"backup-pipeline: error: this archive is already in the catalog as backup "
                     f"{record['id']} ({record['file_name']})\n")
    rows = history.list_page(settings.database_url)["items"]
    assert [(r["id"], r["status"]) for r in rows] == [(record["id"], "completed")]
    assert sorted(p.name for p in settings.backup_dir.iterdir() if p.is_file()) == \
        [record["file_name"]]
    assert list((settings.backup_dir / importer.IMPORT_STAGING).iterdir()) == []


def test_an_import_killed_between_link_and_record_leaves_no_archive(app_env, tmp_path):
    """kill -9 while the import's row is being marked completed (a trigger of the test's holds
    that UPDATE): its archive is linked, its row in progress. Importing the archive again
    reaps the row, removes the unfinished archive, and stores the archive once."""
    settings = app_env.settings
    url = settings.database_url
    made = run_backup(settings)
    archive = shutil.copy(settings.backup_dir / made["file_name"], tmp_path / "incoming.tar.gz")
    history.delete(url, made["id"])
    (settings.backup_dir / made["file_name"]).unlink()
    key = secrets.randbits(62)
    psql(url, "-c", f"""
        CREATE FUNCTION public.hold_completion() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_advisory_lock({key}); PERFORM pg_advisory_unlock({key}); RETURN NEW;
        END $$;
        CREATE TRIGGER hold_completion BEFORE UPDATE ON backup.backup_history FOR EACH ROW
        WHEN (NEW.status = 'completed') EXECUTE FUNCTION public.hold_completion();""")
    app_name = f"bp-import-test-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        victim = subprocess.Popen([CLI, "import", str(archive)], start_new_session=True,
                                  env={**app_env.environ(), "PGAPPNAME": app_name},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 240  # a bound for a hung test, not an assertion
            while _waiting_on_locks(url, app_name) < 1:
                assert victim.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        holder.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                       " WHERE application_name = %s", (app_name,))
    psql(url, "-c", "DROP TRIGGER hold_completion ON backup.backup_history;"
         " DROP FUNCTION public.hold_completion()")
    [row] = history.list_page(url)["items"]
    assert row["status"] == "in_progress" and (settings.backup_dir / row["file_name"]).is_file()

    record = importer.import_archive(settings, archive)

    dead = history.get(url, row["id"])
    assert dead["status"] == "failed"
    assert f"its unfinished archive {row['file_name']} was removed" in dead["error_message"]
    assert record["status"] == "completed" and record["sha256"] == made["sha256"]
    assert sorted(p.name for p in settings.backup_dir.iterdir() if p.is_file()) == \
        [record["file_name"]]
