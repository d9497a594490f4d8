"""The archive streams into psql, checked again on the way: psql never receives a byte the
scanner has not passed, and commits only in load_database, after the whole archive checked out.
Several tests hand load_database what verify would have refused (or an archive changed after
verify), so only the streaming checks stand between it and the live system."""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive import reader
from backup_pipeline.backup.service import ensure_private_dir
from backup_pipeline.errors import ArchiveError
from backup_pipeline.postgres import database_name, with_database
from backup_pipeline.restore import plan as restore_plan
from backup_pipeline.restore import runs, service
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.verify import CheckedArchive, CheckedSql, check_archive
from backup_pipeline_tests.restore.helpers import (
    database_fingerprint,
    gz,
    manifest_for,
    register,
    tiny_dump,
    tree_fingerprint,
    write_archive,
)

DOCS = {"documents/1001/a.txt": b"alpha\n" * 10, "documents/1002/b.bin": bytes(range(256))}


def unrestricted_dump(body: str) -> bytes:
    """A dump without pg_dump's \\restrict lines: a trusted one of these is loaded by a psql
    that is not restricted, so the scanner in front of psql is all that guards it."""
    return b"".join(line for line in tiny_dump(body).splitlines(keepends=True)
                    if not line.startswith((b"\\restrict", b"\\unrestrict")))


def late_meta_command(owned: Path) -> bytes:
    """Several MB of COPY data (psql is busy with it long before the end), then `\\!`."""
    rows = "".join(f"{i}\trow {i} {'x' * 60}\n" for i in range(60_000))
    body = (f"COPY public.restored_marker (id, note) FROM stdin;\n{rows}\\.\n\n"
            f"SELECT 1;\n\\! touch {owned}\n")
    return unrestricted_dump(body)


def leftover_databases(settings) -> list[str]:
    live = database_name(settings.database_url)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{live}\\_restore\\_%",))]


def snapshot(settings) -> tuple:
    return (database_fingerprint(settings.database_url),
            tree_fingerprint(settings.documents_dir))


def assert_nothing_changed(settings, before: tuple) -> None:
    assert snapshot(settings) == before
    assert leftover_databases(settings) == []
    assert list((settings.backup_dir / service.RESTORE_STAGING).iterdir()) == []
    staged = list(settings.documents_dir.parent.glob(f".{settings.documents_dir.name}.restore-*"))
    assert staged == []
    status = runs.latest(settings.database_url)
    assert (status["state"], status["step"]) == ("failed", "load_database")


def test_late_meta_command_is_stopped_before_psql_reads_it(app_env, tmp_path):
    settings = app_env.settings
    owned = tmp_path / "owned"
    members = {mf.DUMP_MEMBER: gz(late_meta_command(owned)), **DOCS}
    archive = write_archive(tmp_path / "motovaultpro_backup_late.tar.gz",
                            manifest_for(members), members)
    backup_id = register(settings, archive)  # manual: trusted, and no \restrict: psql unrestricted
    with pytest.raises(ArchiveError, match="meta-command"):
        check_archive(archive)  # verify would refuse it; load_database must too, on its own
    before = snapshot(settings)
    plan = service.claim(settings, backup_id, dry_run=False)
    ensure_private_dir(settings.backup_dir / service.RESTORE_STAGING)
    checked = CheckedArchive(str(archive), manifest_for(members))  # what verify would report

    with pytest.raises(RestoreError, match=r"restore failed at step load_database: the database "
                                           r"dump contains a psql meta-command at line 60\d\d"):
        service.load_database(settings, plan, checked)

    assert not owned.exists()
    assert_nothing_changed(settings, before)


def test_archive_changed_after_verify_is_refused_and_nothing_committed(app_env, tmp_path):
    settings = app_env.settings
    members = {mf.DUMP_MEMBER: gz(tiny_dump()), **DOCS}
    manifest = manifest_for(members)
    archive = write_archive(tmp_path / "motovaultpro_backup_changed.tar.gz", manifest, members)
    backup_id = register(settings, archive)
    before = snapshot(settings)
    plan = service.claim(settings, backup_id, dry_run=False)
    checked = service.verify(settings, plan)
    # the same manifest, but a document is not what it lists any more
    write_archive(Path(plan.archive_path), manifest,
                  {**members, "documents/1002/b.bin": bytes(reversed(range(256)))})

    with pytest.raises(RestoreError, match="restore failed at step load_database: member "
                                           "'documents/1002/b.bin' does not match its sha256"):
        service.load_database(settings, plan, checked)

    assert_nothing_changed(settings, before)


def test_checked_sql_hands_on_only_what_the_scanner_passed():
    owned_line = b"\\! rm -rf /\n"
    sql = unrestricted_dump("SELECT 'a\\b';\n")
    head, tail = sql.split(b"--\n-- PostgreSQL database dump complete")
    bad = head + b"SELECT 2;\n" + owned_line + b"--\n-- PostgreSQL database dump complete" + tail
    rng = random.Random(8)
    for _ in range(50):
        out: list[bytes] = []
        forward = CheckedSql(out.append)
        with pytest.raises(ArchiveError, match="meta-command"):
            pos = 0
            while pos < len(bad):
                step = rng.randint(1, 40)
                forward.feed(bad[pos:pos + step])
                pos += step
            forward.finish()
        sent = b"".join(out)
        assert bad.startswith(sent) and b"\\!" not in sent


def test_checked_sql_leaves_out_restrict_lines_in_any_chunking():
    sql = tiny_dump("SELECT 1;\n")
    expected = b"".join(line for line in sql.splitlines(keepends=True)
                        if not line.startswith((b"\\restrict", b"\\unrestrict")))
    rng = random.Random(3)
    for size in (1, 2, 7, 64, len(sql)):
        for _ in range(5):
            out: list[bytes] = []
            forward = CheckedSql(out.append)
            pos = 0
            while pos < len(sql):
                step = rng.randint(1, size)
                forward.feed(sql[pos:pos + step])
                pos += step
            forward.finish()
            assert b"".join(out) == expected


def test_iter_members_hashes_the_whole_file(tmp_path):
    members = {mf.DUMP_MEMBER: gz(tiny_dump()), **DOCS}
    archive = write_archive(tmp_path / "a.tar.gz", manifest_for(members), members)
    digest = hashlib.sha256()
    for _, member in reader.iter_members(archive, digest):
        while member.stream.read(7):
            pass
    assert digest.hexdigest() == hashlib.sha256(archive.read_bytes()).hexdigest()


def good_backup(settings, tmp_path: Path) -> str:
    members = {mf.DUMP_MEMBER: gz(tiny_dump()), **DOCS}
    return register(settings, write_archive(tmp_path / "motovaultpro_backup_good.tar.gz",
                                            manifest_for(members), members))


def public_tables(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                            ).fetchone()[0]


def test_verify_starts_the_load_but_only_load_database_commits_it(app_env, tmp_path):
    settings = app_env.settings
    backup_id = good_backup(settings, tmp_path)
    plan = service.claim(settings, backup_id, dry_run=False)
    checked = service.verify(settings, plan)
    new_url = with_database(settings.database_url, plan.new_database)
    restore_plan._background[plan.restore_id]._thread.join()  # psql has read the whole dump by now
    assert leftover_databases(settings) == [plan.new_database]  # loaded beside the live one
    assert public_tables(new_url) == 0  # but not committed: nothing is visible yet
    assert service.load_database(settings, plan, checked) == plan.new_database
    assert public_tables(new_url) == 1
    service.cleanup(settings, plan)


def test_a_failure_after_verify_stops_the_load_and_drops_it(app_env, tmp_path):
    settings = app_env.settings
    backup_id = good_backup(settings, tmp_path)
    before = snapshot(settings)
    plan = service.claim(settings, backup_id, dry_run=False)
    service.verify(settings, plan)

    def failing_backup() -> dict:
        raise RuntimeError("no safety backup today")

    with pytest.raises(RestoreError, match="step safety_backup: .*no safety backup today"):
        service.safety_backup(settings, plan, failing_backup)

    assert snapshot(settings) == before
    assert leftover_databases(settings) == []
    assert list((settings.backup_dir / service.RESTORE_STAGING).iterdir()) == []
    assert not Path(plan.documents_staging).exists()
    assert restore_plan.take_background(plan.restore_id) is None


def test_no_sql_from_a_file_the_catalog_does_not_know_reaches_psql(app_env, tmp_path):
    """The loading starts during verify only once the file's sha256 is the catalog's: an
    archive replaced on disk (valid in itself) never gets to run SQL, whose effects outside
    the transaction (here a file written by the server) no rollback would undo. (Which comes
    first is decided by the order of the code, not by a race this test could lose.)"""
    settings = app_env.settings
    backup_id = good_backup(settings, tmp_path)
    shared = Path(tempfile.mkdtemp(prefix="bp-sql-"))  # where the server's OS user may write
    shared.chmod(0o777)
    owned = shared / "owned-by-sql"
    rows = "".join(f"{i}\trow {i} {'x' * 60}\n" for i in range(60_000))  # past any buffer
    body = (f"COPY (SELECT 1) TO PROGRAM 'touch {owned}';\n"
            f"COPY public.restored_marker (id, note) FROM stdin;\n{rows}\\.\n")
    members = {mf.DUMP_MEMBER: gz(unrestricted_dump(body)), **DOCS}
    plan = service.claim(settings, backup_id, dry_run=False)
    write_archive(Path(plan.archive_path), manifest_for(members), members)
    before = snapshot(settings)

    with pytest.raises(RestoreError, match="does not match the sha256 recorded in the catalog"):
        service.verify(settings, plan)

    try:
        assert not owned.exists()
    finally:
        shutil.rmtree(shared)
    assert snapshot(settings) == before and leftover_databases(settings) == []
