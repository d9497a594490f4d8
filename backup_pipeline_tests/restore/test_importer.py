"""`import PATH`: a valid archive from elsewhere joins the catalog as `uploaded` and restores
(with psql restricted to SQL); bad ones are rejected and nothing is stored."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from backup_pipeline.backup.inventory import verify
from backup_pipeline.backup.service import run_backup
from backup_pipeline.catalog import history
from backup_pipeline.cli import main
from backup_pipeline.errors import ArchiveError
from backup_pipeline.restore import importer, service
from backup_pipeline.restore.errors import RestoreBusyError, RestoreError
from backup_pipeline_tests.conftest import psql
from backup_pipeline_tests.helpers import schema_dump, table_fingerprints
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
                                  "shell_escape"])
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
