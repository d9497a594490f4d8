"""The documents swap where DOCUMENTS_DIR is a mount point (the compose volume), and what a
crash at any moment of a swap leaves: `recover` always ends in a whole state, the previous
documents unless the restore's database side committed."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from backup_pipeline.archive.reader import read_manifest
from backup_pipeline.backup.documents import RESERVED_PREFIX
from backup_pipeline.backup.inventory import archive_path
from backup_pipeline.backup.service import run_backup
from backup_pipeline.catalog import history
from backup_pipeline.restore import documents, runs, service
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline_tests.conftest import psql
from backup_pipeline_tests.restore.helpers import database_fingerprint, tree_fingerprint

RESTORE_ID = "0123abcd-0000-4000-8000-000000000000"


@pytest.fixture
def mounted_documents(app_env, tmp_path: Path):
    """app_env's documents moved onto a tmpfs mounted at DOCUMENTS_DIR."""
    docs = app_env.documents_dir
    source = docs.rename(tmp_path / "documents-source")
    docs.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0755", "tmpfs",
                           str(docs)], capture_output=True, text=True)
    if done.returncode != 0:
        source.rename(docs)
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    shutil.copytree(source, docs, dirs_exist_ok=True)
    yield docs
    subprocess.run(["umount", "-l", str(docs)], check=False)


def reserved(root: Path) -> list[str]:
    return sorted(n for n in os.listdir(root) if n.startswith(RESERVED_PREFIX))


def user_tree(root: Path) -> list[tuple]:
    """The documents as users see them: without what a restore keeps under reserved names."""
    return [e for e in tree_fingerprint(root) if not e[0].startswith(RESERVED_PREFIX)]


def change_everything(settings) -> None:
    psql(settings.database_url, "-c", "DELETE FROM film_actor WHERE actor_id < 50")
    docs = settings.documents_dir
    (docs / "1001" / "invoice-2024.txt").write_bytes(b"changed")
    shutil.rmtree(docs / "1003")
    (docs / "2000").mkdir()
    (docs / "2000" / "new.txt").write_bytes(b"added after the backup")


def test_restore_into_a_mounted_documents_dir(app_env, mounted_documents):
    settings = app_env.settings
    assert documents.swap_mode(mounted_documents) == documents.CONTENTS
    backup = run_backup(settings)
    original = (database_fingerprint(settings.database_url), user_tree(mounted_documents))
    change_everything(settings)
    preview = service.run_restore(settings, backup["id"], dry_run=True)
    assert not [w for w in preview["warnings"] if "documents" in w and "cannot" in w]
    assert preview["documents"]["totals"]["removed"] == 1

    record = service.run_restore(settings, backup["id"], dry_run=False)

    assert record["state"] == "completed" and record["warnings"] == []
    assert os.path.ismount(mounted_documents)
    assert (database_fingerprint(settings.database_url),
            user_tree(mounted_documents)) == original
    assert reserved(mounted_documents) == []
    # the safety backup holds the changed state, and no reserved name is in any archive
    safety = archive_path(settings, history.get(settings.database_url, record["safety_backup_id"]))
    names = [m["path"] for m in read_manifest(safety)["members"]]
    assert "documents/2000/new.txt" in names
    assert not [n for n in names if RESERVED_PREFIX in n]


def test_failed_database_swap_puts_mounted_documents_back(app_env, mounted_documents,
                                                          pg_server_url):
    settings = app_env.settings
    backup = run_backup(settings)
    change_everything(settings)
    plan = service.claim(settings, backup["id"], dry_run=False)
    checked = service.verify(settings, plan)
    service.load_database(settings, plan, checked)
    before = (database_fingerprint(settings.database_url), user_tree(mounted_documents))
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{plan.old_database}"')  # the rename will fail
    try:
        with pytest.raises(RestoreError, match="restore failed at step swap"):
            service.swap(settings, plan)
        assert (database_fingerprint(settings.database_url),
                user_tree(mounted_documents)) == before
        assert reserved(mounted_documents) == []
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{plan.old_database}"')


def crash_after_the_documents_swap(settings, documents_dir: Path):
    """A restore of a backup, after the state changed, whose process dies between the
    documents swap and the database rename. Returns (its plan, the changed state)."""
    backup = run_backup(settings)
    change_everything(settings)
    changed = (database_fingerprint(settings.database_url), user_tree(documents_dir))
    plan = service.claim(settings, backup["id"], dry_run=False)
    checked = service.verify(settings, plan)
    service.load_database(settings, plan, checked)
    # what swap does before the database rename, then the process dies
    staged = Path(plan.documents_staging)
    documents.mark(staged, plan.restore_id, plan.old_database)
    documents.exchange(staged, documents_dir)
    assert user_tree(documents_dir) != changed[1]
    runs.fail(settings.database_url, plan.restore_id, "interrupted (simulated crash)")
    return plan, changed


def test_crash_between_documents_and_database_swap_is_undone_by_the_next_restore(
        app_env, mounted_documents):
    settings = app_env.settings
    crashed, changed = crash_after_the_documents_swap(settings, mounted_documents)

    next_plan = service.claim(settings, crashed.backup_id, dry_run=False, scope="database")
    assert (database_fingerprint(settings.database_url),
            user_tree(mounted_documents)) == changed  # documents put back
    assert reserved(mounted_documents) == []
    service.cleanup(settings, next_plan)
    runs.fail(settings.database_url, next_plan.restore_id, "test over")


def test_a_backup_after_such_a_crash_settles_the_documents_first(app_env, mounted_documents):
    """Never a backup of restored documents beside the database they do not belong to: the
    backup puts the previous documents back before it reads them."""
    settings = app_env.settings
    crashed, changed = crash_after_the_documents_swap(settings, mounted_documents)

    after = run_backup(settings)
    assert (database_fingerprint(settings.database_url),
            user_tree(mounted_documents)) == changed
    assert reserved(mounted_documents) == []
    names = {m["path"] for m in read_manifest(archive_path(settings, after))["members"]}
    assert "documents/2000/new.txt" in names  # the documents that go with this database
    assert not any(n.startswith("documents/1003/") for n in names)  # removed after
    service.cleanup(settings, crashed)


# -- the exchange itself, killed at every rename -------------------------------------------

def make_trees(root: Path, mode: str) -> tuple[Path, Path]:
    live = root / "documents"
    for rel, data in {"1001/a.txt": b"old a", "1002/b.txt": b"old b", "1003/c/d.txt": b"old d",
                      "top.txt": b"old top"}.items():
        (live / rel).parent.mkdir(parents=True, exist_ok=True)
        (live / rel).write_bytes(data)
    if mode == documents.CONTENTS:
        staged = live / f"{RESERVED_PREFIX}restore-{RESTORE_ID[:8]}"
    else:
        staged = root / f".documents.restore-{RESTORE_ID[:8]}"
    for rel, data in {"1001/a.txt": b"new a", "2000/e.txt": b"new e"}.items():
        (staged / rel).parent.mkdir(parents=True, exist_ok=True)
        (staged / rel).write_bytes(data)
    documents.mark(staged, RESTORE_ID, "old_db_of_the_restore")
    return staged, live


def exchange_killed_at(staged: Path, live: Path, rename_number: int) -> bool:
    """Run the exchange in a child killed (os._exit) just before its n-th rename; whether
    the child was killed."""
    pid = os.fork()
    if pid == 0:
        calls = 0
        real_rename = os.rename

        def dying_rename(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == rename_number:
                os._exit(9)
            return real_rename(*args, **kwargs)

        os.rename = dying_rename
        try:
            documents.exchange(staged, live)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 9


@pytest.mark.parametrize("mode", [documents.CONTENTS, documents.TREE])
def test_a_crash_anywhere_in_the_exchange_is_undone(tmp_path, mode):
    outcomes = set()
    for n in range(1, 40):
        root = tmp_path / str(n)
        staged, live = make_trees(root, mode)
        before = user_tree(live)
        killed = exchange_killed_at(staged, live, n)
        [found] = documents.leftovers(live)
        assert found == staged
        outcomes.add(documents.recover(found, live, database_exists=lambda name: False))
        assert user_tree(live) == before, f"killed before rename {n}"
        assert sorted(os.listdir(root)) == ["documents"]
        if not killed:
            break
    else:
        pytest.fail("the exchange never finished")
    assert "put the previous documents back" in outcomes
    if mode == documents.CONTENTS:
        assert n > 5  # every rename of the exchange was a crash point


@pytest.mark.parametrize("mode", [documents.CONTENTS, documents.TREE])
def test_after_a_committed_database_swap_the_restored_documents_stay(tmp_path, mode):
    staged, live = make_trees(tmp_path, mode)
    documents.exchange(staged, live)
    [found] = documents.leftovers(live)
    assert documents.recover(found, live, lambda name: name == "old_db_of_the_restore") == \
        "kept the restored documents"
    assert {p: h for p, kind, _, h in tree_fingerprint(live) if kind == "file"} == {
        "1001/a.txt": tree_hash(b"new a"), "2000/e.txt": tree_hash(b"new e")}
    assert sorted(os.listdir(tmp_path)) == ["documents"]


def tree_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_staged_documents_of_a_restore_that_never_swapped_are_removed(tmp_path):
    staged, live = make_trees(tmp_path, documents.CONTENTS)
    before = user_tree(live)
    assert documents.recover(staged, live, lambda name: False) == "removed staged documents"
    assert user_tree(live) == before
    assert documents.leftovers(live) == []


def test_a_bind_mount_within_one_filesystem_is_seen(tmp_path):
    source, target = tmp_path / "source", tmp_path / "user documents"
    source.mkdir()
    target.mkdir()
    assert documents.swap_mode(target) == documents.TREE
    done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
    try:
        assert documents.swap_mode(target) == documents.CONTENTS
        assert documents.staging_path(target, RESTORE_ID).parent == target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_marker_without_previous_documents_never_removes_documents(tmp_path):
    """Nothing to put back (or a marker that did not come from a swap): the documents stay."""
    live = tmp_path / "documents"
    (live / "1001").mkdir(parents=True)
    (live / "1001" / "a.txt").write_bytes(b"keep me")
    (live / f"{RESERVED_PREFIX}restored-0123abcd").write_text('{"old_database": "nowhere"}')
    [found] = documents.leftovers(live)
    assert documents.recover(found, live, lambda name: False) == "kept the restored documents"
    assert (live / "1001" / "a.txt").read_bytes() == b"keep me"
    assert reserved(live) == [] and sorted(os.listdir(tmp_path)) == ["documents"]
