"""Archives the catalog did not make are loaded by a temporary role without superuser rights;
roles a dump names that the server lacks are created; a restore unpacks no more than a bound
the archive cannot set (RESTORE_MAX_BYTES, free disk)."""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from backup_pipeline.archive import manifest as mf
from backup_pipeline.backup.service import run_backup
from backup_pipeline.restore import plan as restore_plan
from backup_pipeline.restore import runs, service
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline_tests.conftest import psql, role_exists
from backup_pipeline_tests.helpers import table_fingerprints
from backup_pipeline_tests.restore.helpers import (
    database_fingerprint,
    gz,
    manifest_for,
    register,
    tiny_dump,
    tree_fingerprint,
    write_archive,
)
from backup_pipeline_tests.restore.test_refusals import DOCS


def restore_roles(url: str) -> list[tuple]:
    """Roles named after restores (loaders), and the catalog's records of roles made."""
    with psycopg.connect(url) as conn:
        loaders = [r[0] for r in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'bp\\_loader\\_%%'"
            " AND rolname IN (SELECT 'bp_loader_' || replace(id::text, '-', '')"
            " FROM backup.restore_runs)")]
        records = conn.execute("SELECT role_name, kind FROM backup.restore_roles").fetchall()
    return loaders + records


def owners(url: str, *tables: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relname = ANY(%s)", (list(tables),)).fetchall())


def shared_dir() -> Path:
    """A folder the database server's OS user may write to."""
    path = Path(tempfile.mkdtemp(prefix="bp-untrusted-"))
    path.chmod(0o777)
    return path


ATTACKS = {
    "copy_to_program": "COPY (SELECT 1) TO PROGRAM 'touch {owned}';\n",
    "read_server_file": "CREATE TABLE public.leak AS SELECT pg_read_file('/etc/passwd') AS t;\n",
    "set_role": "SET ROLE postgres;\nCOPY (SELECT 1) TO PROGRAM 'touch {owned}';\n",
    "reset_role": "RESET ROLE;\nCOPY (SELECT 1) TO PROGRAM 'touch {owned}';\n",
    "session_authorization": "SET SESSION AUTHORIZATION postgres;\n"
                             "COPY (SELECT 1) TO PROGRAM 'touch {owned}';\n",
    # LANGUAGE internal wraps a server function without its EXECUTE check (superuser only)
    "language_internal": "CREATE FUNCTION public.rf(text, bigint, bigint) RETURNS text "
                         "LANGUAGE internal STRICT AS 'pg_read_file_off_len';\n"
                         "CREATE TABLE public.leak AS SELECT public.rf('/etc/hostname', 0, 99);\n",
    # plpython3u is not installed here (it fails either way); kept for servers that have it
    "language_plpython3u": "CREATE FUNCTION public.py() RETURNS integer LANGUAGE plpython3u "
                           "AS $$ open('{owned}', 'w') $$;\n",
    "index_expression": (  # an immutable function may call a volatile one
        "CREATE FUNCTION public.g() RETURNS void LANGUAGE plpgsql AS $g$"
        "BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {owned}'''; END $g$;\n"
        "CREATE FUNCTION public.f(integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $f$"
        "BEGIN PERFORM public.g(); RETURN $1; END $f$;\n"
        "CREATE INDEX restored_marker_f ON public.restored_marker (public.f(id));\n"),
    "alter_role_superuser": "ALTER ROLE CURRENT_USER SUPERUSER;\n",
    "grant_server_program": "GRANT pg_execute_server_program TO CURRENT_USER;\n",
    "owner_to_superuser_then_program": (
        "CREATE FUNCTION public.g() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $g$"
        "BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {owned}'''; END $g$;\n"
        "ALTER FUNCTION public.g() OWNER TO postgres;\nSELECT public.g();\n"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_untrusted_sql_runs_without_superuser_rights(app_env, tmp_path, make_role, attack):
    """An uploaded archive's SQL gets no more than a role of its own: each of these fails the
    restore with one line, the file the server would write is never written, the live database
    and documents are unchanged, and the temporary role is gone."""
    settings = dataclasses.replace(app_env.settings, untrusted_owner=make_role("owner"))
    shared = shared_dir()
    owned = shared / "owned-by-sql"
    members = {mf.DUMP_MEMBER: gz(tiny_dump(ATTACKS[attack].format(owned=owned))), **DOCS}
    archive = write_archive(tmp_path / "motovaultpro_backup_attack.tar.gz",
                            manifest_for(members), members)
    backup_id = register(settings, archive, "uploaded")
    before = (database_fingerprint(settings.database_url),
              tree_fingerprint(settings.documents_dir))

    try:
        with pytest.raises(RestoreError, match="restore failed at step load_database: ") as error:
            service.run_restore(settings, backup_id, dry_run=False)
        assert not owned.exists()
    finally:
        shutil.rmtree(shared)
    assert "\n" not in str(error.value)
    assert (database_fingerprint(settings.database_url),
            tree_fingerprint(settings.documents_dir)) == before
    assert restore_roles(settings.database_url) == []
    assert runs.latest(settings.database_url)["step"] == "load_database"


def test_untrusted_pagila_restores_with_its_data_and_ordinary_owners(app_env, tmp_path,
                                                                    make_role):
    """pagila's objects belong to postgres (a superuser): from an uploaded archive they go to
    RESTORE_UNTRUSTED_OWNER; a table of an ordinary role keeps its owner; the data is the
    same."""
    url = app_env.settings.database_url
    owner, keeper, reader = make_role("owner"), make_role("keeper"), make_role("reader")
    settings = dataclasses.replace(app_env.settings, untrusted_owner=owner)
    psql(url, "-c", f'GRANT CREATE ON SCHEMA public TO "{keeper}";'
                    f' ALTER TABLE public.actor OWNER TO "{keeper}";'
                    f' GRANT SELECT ON public.film TO "{reader}"')
    made = run_backup(settings)
    uploaded = tmp_path / made["file_name"].replace(".tar.gz", "_uploaded.tar.gz")
    shutil.copy(settings.backup_dir / made["file_name"], uploaded)
    backup_id = register(settings, uploaded, "uploaded")
    data = table_fingerprints(url)
    psql(url, "-c", "DELETE FROM payment WHERE payment_id % 2 = 0")

    preview = service.run_restore(settings, backup_id, dry_run=True)
    assert preview["roles"]["owner"] == owner
    warning = next(w for w in preview["warnings"] if "not made here" in w)
    assert f"except those of {keeper}, which keep their owner" in warning
    assert "postgres" in warning and "\n" not in warning

    result = service.run_restore(settings, backup_id, dry_run=False)

    assert result["state"] == "completed"
    assert table_fingerprints(url) == data
    found = owners(url, "actor", "film", "payment", "customer")
    assert found == {"actor": keeper, "film": owner, "payment": owner, "customer": owner}
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT has_table_privilege(%s, 'public.film', 'SELECT')",
                            (reader,)).fetchone()[0]
        functions = set(conn.execute(
            "SELECT DISTINCT pg_get_userbyid(p.proowner) FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
            ).fetchall())
        db_owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database"
                                " WHERE datname = current_database()").fetchone()[0]
    assert functions == {(owner,)}
    assert db_owner != owner  # the database itself keeps the live database's owner
    assert restore_roles(url) == []


def test_untrusted_restore_refused_when_only_a_superuser_could_own_it(app_env, tmp_path):
    """Without RESTORE_UNTRUSTED_OWNER and with a superuser owning the live database, an
    uploaded archive is refused (one line saying how to set one up) before the safety backup."""
    settings = app_env.settings
    members = {mf.DUMP_MEMBER: gz(tiny_dump()), **DOCS}
    archive = write_archive(tmp_path / "motovaultpro_backup_owner.tar.gz",
                            manifest_for(members), members)
    backup_id = register(settings, archive, "uploaded")
    before = database_fingerprint(settings.database_url)

    preview = service.run_restore(settings, backup_id, dry_run=True)
    assert any("the restore would be refused" in w and "RESTORE_UNTRUSTED_OWNER" in w
               for w in preview["warnings"])
    with pytest.raises(RestoreError, match="step verify: .*is a superuser: set "
                                           "RESTORE_UNTRUSTED_OWNER") as error:
        service.run_restore(settings, backup_id, dry_run=False)
    assert "\n" not in str(error.value)
    assert database_fingerprint(settings.database_url) == before
    assert runs.latest(settings.database_url)["safety_backup_id"] is None
    assert restore_roles(settings.database_url) == []


@pytest.mark.parametrize("backup_type", ["manual", "uploaded"])
def test_missing_roles_are_named_and_created(app_env, make_role, tmp_path, backup_type):
    """Disaster recovery onto a server without the dump's roles: the preview names them, and
    the restore creates them NOLOGIN without a password, so ownership and grants are kept."""
    owner = make_role("owner")
    settings = dataclasses.replace(app_env.settings, untrusted_owner=owner)
    url = settings.database_url
    gone, gone_reader = make_role("gone"), make_role("gonereader")
    psql(url, "-c", f'CREATE TABLE public.gone_marker (id integer);'
                    f' ALTER TABLE public.gone_marker OWNER TO "{gone}";'
                    f' GRANT SELECT ON public.film TO "{gone_reader}"')
    made = run_backup(settings)
    backup_id = made["id"]
    if backup_type == "uploaded":
        uploaded = tmp_path / made["file_name"].replace(".tar.gz", "_uploaded.tar.gz")
        shutil.copy(settings.backup_dir / made["file_name"], uploaded)
        backup_id = register(settings, uploaded, "uploaded")
    psql(url, "-c", f'DROP TABLE public.gone_marker; REVOKE ALL ON public.film FROM'
                    f' "{gone_reader}"; DROP ROLE "{gone}"; DROP ROLE "{gone_reader}"')

    preview = service.run_restore(settings, backup_id, dry_run=True)
    assert preview["roles"]["missing"] == sorted([gone, gone_reader])
    assert any(gone in w and gone_reader in w and "NOLOGIN" in w for w in preview["warnings"])

    assert service.run_restore(settings, backup_id, dry_run=False)["state"] == "completed"

    assert owners(url, "gone_marker") == {"gone_marker": gone}
    with psycopg.connect(url) as conn:
        made_roles = conn.execute(
            "SELECT rolname, rolcanlogin, rolpassword IS NULL, rolsuper FROM pg_authid"
            " WHERE rolname = ANY(%s) ORDER BY 1", ([gone, gone_reader],)).fetchall()
        assert conn.execute("SELECT has_table_privilege(%s, 'public.film', 'SELECT')",
                            (gone_reader,)).fetchone()[0]
    assert made_roles == sorted([(gone, False, True, False), (gone_reader, False, True, False)])
    assert restore_roles(url) == []


def test_roles_of_a_failed_restore_are_dropped(app_env, make_role, tmp_path):
    """A restore that fails drops the roles it created for the dump (and its loader)."""
    settings = dataclasses.replace(app_env.settings, untrusted_owner=make_role("owner"))
    ghost = f"bp_ghost_{secrets.token_hex(4)}"
    body = f'CREATE TABLE public.g (id integer);\nALTER TABLE public.g OWNER TO "{ghost}";\n' \
           "SELECT 1 / 0;\n"
    members = {mf.DUMP_MEMBER: gz(tiny_dump(body)), **DOCS}
    archive = write_archive(tmp_path / "motovaultpro_backup_ghost.tar.gz",
                            manifest_for(members), members)
    backup_id = register(settings, archive, "uploaded")
    with pytest.raises(RestoreError, match="division by zero"):
        service.run_restore(settings, backup_id, dry_run=False)
    with psycopg.connect(settings.database_url) as conn:
        assert not role_exists(conn, ghost)
    assert restore_roles(settings.database_url) == []


def test_a_killed_restore_leaves_its_loader_to_the_next_restore(app_env, make_role, tmp_path):
    settings = dataclasses.replace(app_env.settings, untrusted_owner=make_role("owner"))
    members = {mf.DUMP_MEMBER: gz(tiny_dump()), **DOCS}
    archive = write_archive(tmp_path / "motovaultpro_backup_killed.tar.gz",
                            manifest_for(members), members)
    backup_id = register(settings, archive, "uploaded")
    plan = service.claim(settings, backup_id, dry_run=False)
    service.verify(settings, plan)
    restore_plan._background[plan.restore_id]._thread.join()  # its own role, not committed
    restore_plan.stop_background(plan.restore_id)  # the process "dies": nothing else is cleaned
    runs.fail(settings.database_url, plan.restore_id, "killed")
    with psycopg.connect(settings.database_url) as conn:
        assert role_exists(conn, plan.loader_role)

    later = service.claim(settings, backup_id, dry_run=False)

    with psycopg.connect(settings.database_url) as conn:
        assert not role_exists(conn, plan.loader_role)
    assert restore_roles(settings.database_url) == []
    service.cleanup(settings, later)
    runs.fail(settings.database_url, later.restore_id, "test over")


def test_declared_size_beyond_the_bound_is_refused_before_unpacking(app_env, tmp_path):
    """The manifest's own sql_bytes cannot lift the bound: 10^18 bytes is refused at once
    (RESTORE_MAX_BYTES, default 1 TiB), and within the bound, more than the database server's
    free disk is refused too; nothing is changed either way."""
    settings = app_env.settings
    members = {mf.DUMP_MEMBER: gz(tiny_dump()), **DOCS}
    before = (database_fingerprint(settings.database_url),
              tree_fingerprint(settings.documents_dir))
    cases = [(10**18, settings, r"the archive declares \d+ bytes of data \(10{18} of SQL, \d+ "
                                r"of documents\), more than the 1099511627776 a restore may "
                                r"unpack here \(RESTORE_MAX_BYTES\)"),
             (1 << 50, dataclasses.replace(settings, restore_max_bytes=1 << 60),
              "not enough disk space: the dump declares .* of SQL, the database server has")]
    for n, (declared, use, message) in enumerate(cases):
        archive = write_archive(tmp_path / f"motovaultpro_backup_huge{n}.tar.gz",
                                manifest_for(members, sql_bytes=declared), members)
        backup_id = register(use, archive, "manual")
        with pytest.raises(RestoreError, match="step verify: " + message) as error:
            service.run_restore(use, backup_id, dry_run=False)
        assert "\n" not in str(error.value)
    assert (database_fingerprint(settings.database_url),
            tree_fingerprint(settings.documents_dir)) == before
