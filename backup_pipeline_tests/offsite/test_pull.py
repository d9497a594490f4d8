"""Pulling copies back: a wrong key imports nothing, a copy the age CLI encrypted is read, and
the whole disaster recovery on a fresh database needs only the bucket and the key."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest

from backup_pipeline.catalog.migrate import migrate
from backup_pipeline.errors import ConfigError
from backup_pipeline.offsite import config as offsite_config
from backup_pipeline.offsite.pull import pull
from backup_pipeline_tests.conftest import make_dagster_home, psql
from backup_pipeline_tests.helpers import (
    run_backup_job,
    run_cli,
    table_fingerprints,
    tree_fingerprint,
)
from backup_pipeline_tests.offsite.conftest import Offsite, age_key, make_client


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM backup.backup_history").fetchone()[0]


def test_wrong_key_imports_nothing(offsite: Offsite, tmp_path: Path, monkeypatch):
    row = run_backup_job().output_for_node("record_backup")
    before = _count(offsite.env.database_url)
    other = age_key(tmp_path / "other-identity.txt")
    monkeypatch.setenv("AGE_IDENTITY_FILE", str(other.identity_file))
    done = run_cli("offsite", "pull", f"nightly/{row['file_name']}.age")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "wrong key" in lines[0] and "nothing was imported" in lines[0]
    assert _count(offsite.env.database_url) == before
    staging = offsite.env.backup_dir / ".offsite"
    assert not staging.exists() or list(staging.rglob("*")) == []


def test_unknown_key_is_one_line(offsite: Offsite):
    done = run_cli("offsite", "pull", "nightly/nope.tar.gz.age")
    assert done.returncode == 1 and "no object" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_copy_encrypted_by_the_age_cli_is_pulled(offsite: Offsite, monkeypatch, tmp_path):
    monkeypatch.delenv("OFFSITE_URL")  # made here by hand, as an operator would
    row = run_backup_job().output_for_node("record_backup")
    archive = offsite.env.backup_dir / row["file_name"]
    sealed = tmp_path / "by-age-cli.age"
    subprocess.run(["age", "-r", offsite.key.recipient, "-o", str(sealed), str(archive)],
                   check=True)
    key = f"nightly/{row['file_name']}.age"
    offsite.client.upload_file(str(sealed), offsite.bucket, key)
    archive.unlink()  # the importer refuses an archive already in the catalog
    subprocess.run(["psql", "-X", "-q", "-d", offsite.env.database_url, "-c",
                    f"DELETE FROM backup.backup_history WHERE id = '{row['id']}'"], check=True)
    monkeypatch.setenv("OFFSITE_URL", f"s3://{offsite.bucket}/nightly")
    record = pull(offsite.env.settings, offsite.config, make_client(offsite), key)
    assert record["backup_type"] == "uploaded" and record["sha256"] == row["sha256"]
    assert record["matches_object_metadata"] is None  # no metadata on a hand-made copy


def test_disaster_recovery_on_a_fresh_database(offsite: Offsite, databases, make_role,
                                              tmp_path: Path):
    """The README's runbook: a new server with an empty database, only the bucket and key,
    and without a role the dump's objects belong to (roles are not in a pg_dump)."""
    source = offsite.env
    app_role = make_role("app")
    psql(source.database_url, "-c", f'ALTER TABLE public.actor OWNER TO "{app_role}";'
                                     f' GRANT SELECT ON public.film TO "{app_role}"')
    made = run_backup_job().output_for_node("record_backup")
    expected_tables = table_fingerprints(source.database_url)
    expected_documents = tree_fingerprint(source.documents_dir)
    psql(source.database_url, "-c", f'REASSIGN OWNED BY "{app_role}" TO CURRENT_USER;'
                                     f' DROP OWNED BY "{app_role}"; DROP ROLE "{app_role}"')

    fresh_url = databases.create()
    owner = make_role("owner")  # the runbook's RESTORE_UNTRUSTED_OWNER
    fresh = {**offsite.environ(), "DATABASE_URL": fresh_url,
             "DOCUMENTS_DIR": str(tmp_path / "new" / "documents"),
             "BACKUP_DIR": str(tmp_path / "new" / "backups"),
             "DAGSTER_HOME": str(make_dagster_home(tmp_path / "new" / "dagster")),
             "RESTORE_UNTRUSTED_OWNER": owner}
    (tmp_path / "new" / "documents").mkdir()

    def cli(*args: str) -> dict:
        done = run_cli(*args, "--json", env=fresh)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    cli("migrate")
    listed = cli("offsite", "list")
    assert [i["backup_id"] for i in listed["items"]] == [made["id"]]
    pulled = cli("offsite", "pull", listed["items"][0]["key"])
    assert pulled["backup_type"] == "uploaded" and pulled["sha256"] == made["sha256"]
    assert pulled["matches_object_metadata"] is True
    preview = cli("restore", pulled["id"], "--preview")
    assert app_role in json.dumps(preview)  # the missing role is named
    cli("restore", pulled["id"], "--yes")

    assert table_fingerprints(fresh_url) == expected_tables
    assert tree_fingerprint(tmp_path / "new" / "documents") == expected_documents
    with psycopg.connect(fresh_url) as conn:
        owners = dict(conn.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename IN ('actor', 'film')").fetchall())
        assert owners == {"actor": app_role, "film": owner}
        assert conn.execute("SELECT has_table_privilege(%s, 'public.film', 'SELECT')",
                            (app_role,)).fetchone()[0]
        assert not conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                                (app_role,)).fetchone()[0]


@pytest.mark.parametrize("url", ["s3://", "http://bucket", "s3://Bad_Bucket/x"])
def test_bad_offsite_url_is_one_line(offsite: Offsite, monkeypatch, url):
    monkeypatch.setenv("OFFSITE_URL", url)
    with pytest.raises(ConfigError, match="OFFSITE_URL"):
        offsite_config.from_env()


def test_migrate_is_idempotent_with_offsite_table(databases):
    url = databases.create()
    assert "006_offsite_copies" in migrate(url)
    assert migrate(url) == []
