"""Bad archives are refused with a clear error, leaving the database, the documents and every
folder as they were, and writing nothing outside the restore's staging."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from backup_pipeline.archive import manifest as mf
from backup_pipeline.backup.service import run_backup
from backup_pipeline.catalog import history
from backup_pipeline.restore import runs, service
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline_tests.restore.helpers import (
    database_fingerprint,
    gunzip,
    gz,
    manifest_for,
    read_archive,
    register,
    tiny_dump,
    tree_fingerprint,
    write_archive,
)

DOCS = {"documents/1001/a.txt": b"alpha\n" * 10, "documents/1002/b.bin": bytes(range(256))}
OUTSIDE = [Path("/etc/x"), Path("/x"), Path("/tmp/x")]


def good_members(body: str = "") -> dict[str, bytes]:
    return {mf.DUMP_MEMBER: gz(tiny_dump(body)), **DOCS}


def typed(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.devmajor, info.devminor = 1, 3
    return info, None


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def build(tmp: Path, case: str) -> tuple[Path, str | tuple[str, ...]]:
    """An archive for `case` and the message its refusal must contain (or one of them)."""
    path = tmp / f"motovaultpro_backup_{case}.tar.gz"
    members = good_members()
    manifest = manifest_for(members)
    if case == "truncated":
        write_archive(path, manifest, members)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path, ("damaged or truncated", "ended before the end-of-stream marker")
    if case == "flipped_raw_byte":
        write_archive(path, manifest, members)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        return path, ("damaged or truncated", "does not match its sha256", "not valid gzip",
                      "not a readable .tar.gz")
    if case.startswith("flipped_"):
        target = {"flipped_dump": mf.DUMP_MEMBER, "flipped_document": "documents/1001/a.txt"
                  }.get(case)
        if target is None:  # flipped_manifest: one hex digit of a checksum
            text = mf.encode(manifest)
            digest = manifest["members"][1]["sha256"].encode()
            flipped = digest[:10] + (b"0" if digest[10:11] != b"0" else b"1") + digest[11:]
            write_archive(path, text.replace(digest, flipped), members)
            return path, "does not match its sha256"
        data = bytearray(members[target])
        data[len(data) // 2] ^= 0x01
        write_archive(path, manifest, {**members, target: bytes(data)})
        return path, f"member {target!r} does not match its sha256"
    if case == "missing_member":
        manifest["members"].append({"path": "documents/1003/c.txt", "size": 1,
                                    "sha256": hashlib.sha256(b"c").hexdigest()})
        write_archive(path, manifest, members)
        return path, "'documents/1003/c.txt' listed in the manifest is missing"
    if case == "extra_member":
        write_archive(path, manifest, members, [regular("documents/1001/extra.txt", b"x")])
        return path, "'documents/1001/extra.txt' is not listed in the manifest"
    if case == "listed_dotdot":
        bad = {**members, "../x": b"owned"}
        write_archive(path, manifest_for(bad), bad)
        return path, "unsafe member name '../x'"
    if case == "reserved_name":  # a forged restore marker would steer crash recovery
        bad = {**members, "documents/.backup-pipeline-restored-0123abcd":
               b'{"old_database": "nonexistent"}'}
        write_archive(path, manifest_for(bad, manifest), bad)
        return path, "uses the name prefix '.backup-pipeline-'"
    extras = {
        "dotdot": (regular("../x", b"owned"), "unsafe member name '../x'"),
        "deep_dotdot": (regular("documents/../../x", b"owned"), "unsafe member name"),
        "absolute": (regular("/etc/x", b"owned"), "unsafe member name '/etc/x'"),
        "symlink": (typed("documents/1001/link", tarfile.SYMTYPE, "/etc/passwd"), "a symlink"),
        "hardlink": (typed("documents/1001/hard", tarfile.LNKTYPE, "documents/1001/a.txt"),
                     "a hard link"),
        "device": (typed("documents/1001/null", tarfile.CHRTYPE), "a character device"),
        "fifo": (typed("documents/1001/fifo", tarfile.FIFOTYPE), "a FIFO"),
    }
    if case in extras:
        entry, message = extras[case]
        write_archive(path, manifest, members, [entry])
        return path, message
    if case == "file_below_file":  # a restore would write a.txt, then fail to make it a dir
        bad = {**members, "documents/1001/a.txt/b.txt": b"below a file"}
        write_archive(path, manifest_for(bad), bad)
        return path, "member 'documents/1001/a.txt/b.txt' lies below 'documents/1001/a.txt'"
    if case in ("directory_at_file", "directory_below_file"):
        name = "documents/1001/a.txt" + ("/" if case == "directory_at_file" else "/sub/")
        write_archive(path, manifest, members, [typed(name, tarfile.DIRTYPE)])
        return path, f"directory member {name!r} conflicts with the file 'documents/1001/a.txt'"
    if case == "sql_bomb":
        honest = tiny_dump()
        bomb = {**members, mf.DUMP_MEMBER: gz(honest + b" " * (48 << 20), level=1)}
        write_archive(path, manifest_for(bomb, sql_bytes=len(honest)), bomb)
        return path, "decompresses to more than"
    if case == "pax_bomb":
        info = tarfile.TarInfo("././@PaxHeader")
        info.type, info.size = tarfile.XHDTYPE, 200 << 20
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            data = mf.encode(manifest)
            tar.addfile(regular(mf.MANIFEST_NAME, data)[0], io.BytesIO(data))
        stream = raw.getvalue()[: -2 * tarfile.BLOCKSIZE].rstrip(b"\0")
        stream += b"\0" * (-len(stream) % tarfile.BLOCKSIZE)
        path.write_bytes(gz(stream + info.tobuf(tarfile.USTAR_FORMAT) + b"0" * (8 << 20)))
        return path, "extended tar header"
    if case == "declared_huge":
        huge = 1 << 50
        manifest["members"].append({"path": "documents/1003/huge.bin", "size": huge,
                                    "sha256": "0" * 64})
        info = tarfile.TarInfo("documents/1003/huge.bin")
        info.size = huge
        write_archive(path, manifest, members)
        stream = gunzip(path.read_bytes())[: -2 * tarfile.BLOCKSIZE].rstrip(b"\0")
        stream += b"\0" * (-len(stream) % tarfile.BLOCKSIZE)
        path.write_bytes(gz(stream + info.tobuf(tarfile.PAX_FORMAT) + b"\0" * 4096))
        return path, "a restore may unpack here (RESTORE_MAX_BYTES)"
    if case in ("shell_escape", "shell_escape_midline"):
        owned = tmp / "owned"
        line = f"\\! touch {owned}\n" if case == "shell_escape" else \
            f"SELECT 1; \\! touch {owned}\n"
        bad = good_members(line)
        write_archive(path, manifest_for(bad), bad)
        return path, "psql meta-command at line"
    if case == "no_sql_size":
        manifest["source"].pop("sql_bytes")
        write_archive(path, manifest, members)
        return path, "does not declare the dump's SQL size"
    if case == "unknown_version":
        manifest["format_version"] = 99
        write_archive(path, manifest, members)
        return path, "format version 99 is not supported"
    raise AssertionError(case)


CASES = ["truncated", "flipped_raw_byte", "flipped_manifest", "flipped_dump",
         "flipped_document", "missing_member", "extra_member", "listed_dotdot", "reserved_name",
         "dotdot", "deep_dotdot", "absolute", "symlink", "hardlink", "device", "fifo", "sql_bomb",
         "pax_bomb", "declared_huge", "shell_escape", "shell_escape_midline", "no_sql_size",
         "unknown_version", "file_below_file", "directory_at_file", "directory_below_file"]


def all_paths(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# the checks do not depend on the backup type; a few run as uploads too
@pytest.mark.parametrize(("case", "backup_type"), [(c, "manual") for c in CASES] + [
    (c, "uploaded") for c in ("shell_escape", "symlink", "sql_bomb")])
def test_bad_archive_is_refused_and_nothing_changes(app_env, tmp_path_factory, case,
                                                    backup_type):
    settings = app_env.settings
    archive, message = build(tmp_path_factory.mktemp("archives"), case)
    backup_id = register(settings, archive, backup_type)
    root = settings.documents_dir.parent
    before = (database_fingerprint(settings.database_url),
              tree_fingerprint(settings.documents_dir), all_paths(root))
    outside_before = [p.exists() for p in OUTSIDE]

    with pytest.raises(RestoreError, match="restore failed at step verify: ") as error:
        service.run_restore(settings, backup_id, dry_run=False)

    messages = message if isinstance(message, tuple) else (message,)
    assert any(m in str(error.value) for m in messages), str(error.value)
    assert "\n" not in str(error.value)
    assert (database_fingerprint(settings.database_url),
            tree_fingerprint(settings.documents_dir),
            all_paths(root) - {"backups/.restore"}) == before
    assert list((settings.backup_dir / service.RESTORE_STAGING).iterdir()) == []
    assert [p.exists() for p in OUTSIDE] == outside_before
    assert not (archive.parent / "owned").exists()
    status = runs.latest(settings.database_url)
    assert status["state"] == "failed" and status["step"] == "verify"
    assert any(m in status["error_message"] for m in messages)
    assert history.list_page(settings.database_url, backup_type="safety")["total"] == 0


def test_preview_verifies_first(app_env, tmp_path):
    settings = app_env.settings
    archive, _ = build(tmp_path, "shell_escape")
    backup_id = register(settings, archive)
    with pytest.raises(RestoreError, match="psql meta-command at line 17"):
        service.run_restore(settings, backup_id, dry_run=True)
    assert runs.latest(settings.database_url, previews=True)["state"] == "failed"


def test_archive_replaced_on_disk_is_refused(app_env, tmp_path):
    settings = app_env.settings
    backup = run_backup(settings)
    (settings.backup_dir / backup["file_name"]).write_bytes(
        write_archive(tmp_path / "fine.tar.gz", manifest_for(good_members()),
                      good_members()).read_bytes())
    with pytest.raises(RestoreError, match="does not match the sha256 recorded in the catalog"):
        service.run_restore(settings, backup["id"], dry_run=True)


@pytest.mark.parametrize("backup_type", ["manual", "uploaded"])
def test_meta_command_hidden_from_the_scanner_stops_psql(app_env, tmp_path, backup_type,
                                                         make_role):
    """The scanner follows `SET standard_conforming_strings`, not a function that turns it
    off, so such a dump can hide a line from it. With pg_dump's \\restrict at the top (or an
    upload's loader) psql runs restricted: the literal passes, the command fails."""
    settings = dataclasses.replace(app_env.settings, untrusted_owner=make_role("owner"))
    owned = tmp_path / "owned"
    body = ("SELECT set_config('standard_conforming_strings', 'off', false);\n"
            "SELECT 'abc\\';\nCOPY public.restored_marker (id) FROM stdin;\n';\n"
            f"\\! touch {owned}\n\\.\n")
    members = good_members(body)
    archive = write_archive(tmp_path / "motovaultpro_backup_hidden.tar.gz",
                            manifest_for(members), members)
    backup_id = register(settings, archive, backup_type)
    before = database_fingerprint(settings.database_url), tree_fingerprint(settings.documents_dir)
    with pytest.raises(RestoreError, match="step load_database: .*backslash commands are "
                                           "restricted"):
        service.run_restore(settings, backup_id, dry_run=False)
    assert not owned.exists()
    assert (database_fingerprint(settings.database_url),
            tree_fingerprint(settings.documents_dir)) == before


def test_string_read_two_ways_is_refused_where_psql_would_not_be_restricted(app_env, tmp_path):
    """A trusted dump without pg_dump's \\restrict line is loaded by an unrestricted psql: the
    scanner refuses the literal that reads two ways, before any load."""
    settings = app_env.settings
    owned = tmp_path / "owned"
    body = ("SELECT set_config('standard_conforming_strings', 'off', false);\n"
            "SELECT 'abc\\';\nCOPY public.restored_marker (id) FROM stdin;\n';\n"
            f"\\! touch {owned}\n\\.\n")
    dump = tiny_dump(body).replace(b"\\restrict abc123\n", b"").replace(
        b"\\unrestrict abc123\n", b"")
    members = {mf.DUMP_MEMBER: gz(dump), **DOCS}
    archive = write_archive(tmp_path / "motovaultpro_backup_twoways.tar.gz",
                            manifest_for(members), members)
    backup_id = register(settings, archive, "manual")
    before = database_fingerprint(settings.database_url), tree_fingerprint(settings.documents_dir)
    with pytest.raises(RestoreError, match="step verify: .*reads differently with "
                                           "standard_conforming_strings off at line 17"):
        service.run_restore(settings, backup_id, dry_run=False)
    assert not owned.exists()
    assert (database_fingerprint(settings.database_url),
            tree_fingerprint(settings.documents_dir)) == before


def test_dump_failing_on_its_last_statement_changes_nothing(app_env, tmp_path):
    settings = app_env.settings
    backup = run_backup(settings)
    manifest, members = read_archive(settings.backup_dir / backup["file_name"])
    sql = gunzip(members[mf.DUMP_MEMBER])
    end = sql.rindex(b"--\n-- PostgreSQL database dump complete")
    members[mf.DUMP_MEMBER] = gz(sql[:end] + b"SELECT 1 / 0;\n\n" + sql[end:])
    archive = write_archive(tmp_path / "motovaultpro_backup_lastfails.tar.gz",
                            manifest_for(members, base=manifest), members)
    backup_id = register(settings, archive)
    (settings.documents_dir / "1001" / "later.txt").write_bytes(b"written after the backup")
    before = (database_fingerprint(settings.database_url),
              tree_fingerprint(settings.documents_dir), all_paths(settings.documents_dir.parent))

    with pytest.raises(RestoreError, match="restore failed at step load_database: loading the "
                                           "dump failed, nothing was changed: .*division by zero"):
        service.run_restore(settings, backup_id, dry_run=False)

    after = all_paths(settings.documents_dir.parent)
    assert (database_fingerprint(settings.database_url),
            tree_fingerprint(settings.documents_dir)) == before[:2]
    assert {p for p in after - before[2] if not p.startswith("backups/")} == set()
    status = runs.latest(settings.database_url)
    assert (status["state"], status["step"]) == ("failed", "load_database")
    assert history.get(settings.database_url, status["safety_backup_id"])["status"] == "completed"
    assert list((settings.backup_dir / service.RESTORE_STAGING).iterdir()) == []
