"""The documents side of a restore: a staged tree swapped in by renames, settled after a crash.

Where DOCUMENTS_DIR can be renamed, the new tree is staged beside it (same filesystem, outside
the tree) and swapped in by one atomic renameat2(RENAME_EXCHANGE). Where it cannot (a mount
point, as the compose volume is, or another filesystem than its parent), the new tree is staged
inside it under a reserved name that backups skip, and its top-level entries are exchanged by
renames, journalled so that an interrupted exchange is put back. Either way the staging path
then holds the previous tree, removed only once the whole restore is final.

The staged tree carries a marker naming its restore. Found in DOCUMENTS_DIR after a crash, it
says the restored documents are live; `recover` keeps them only if the database side of that
restore committed too, and otherwise puts the previous documents back.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import stat
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive.reader import sha256_file
from backup_pipeline.archive.writer import fsync_dir
from backup_pipeline.backup.documents import RESERVED_PREFIX, _walk

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
TOP_LEVEL = "(top level)"
TREE, CONTENTS = "tree", "contents"
_STAGED = f"{RESERVED_PREFIX}restore-"
_HOLDING = f"{RESERVED_PREFIX}swap-"
_MARKER = f"{RESERVED_PREFIX}restored-"
_MOVING_IN = ".moving-in"


def _tag(restore_id: str) -> str:
    return restore_id.replace("-", "")[:8]


def _mount_points() -> set[str]:
    """Every mount point of this process (a bind mount within one filesystem included, which
    os.path.ismount does not see)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            fields = [line.split(" ")[4] for line in f if line.count(" ") >= 4]
    except OSError:
        return set()
    return {re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), p) for p in fields}


def swap_mode(documents_dir: Path) -> str:
    """TREE where DOCUMENTS_DIR can be renamed with a sibling, CONTENTS where it cannot."""
    try:
        if os.path.ismount(documents_dir) or \
                os.stat(documents_dir).st_dev != os.stat(documents_dir.parent).st_dev:
            return CONTENTS
    except FileNotFoundError:
        return TREE
    return CONTENTS if os.path.realpath(documents_dir) in _mount_points() else TREE


def staging_parent(documents_dir: Path) -> Path:
    """The folder whose filesystem holds the staged documents."""
    return documents_dir if swap_mode(documents_dir) == CONTENTS else documents_dir.parent


def _inside(live: Path, tag: str) -> Path:
    return live / f"{_STAGED}{tag}"


def _beside(live: Path, tag: str) -> Path:
    return live.parent / f".{live.name}.restore-{tag}"


def staging_path(documents_dir: Path, restore_id: str) -> Path:
    tag = _tag(restore_id)
    if swap_mode(documents_dir) == CONTENTS:
        return _inside(documents_dir, tag)
    return _beside(documents_dir, tag)


def _staged_tag(staged: Path) -> str:
    return staged.name.rsplit("-", 1)[1]


def mark(staged: Path, restore_id: str, old_database: str | None) -> None:
    """Put the marker into the staged root, on disk before the tree is swapped in.

    `old_database` is the name the live database gets if the restore's database swap commits
    (None when the restore has no database side)."""
    path = staged / f"{_MARKER}{_tag(restore_id)}"
    with open(path, "x", encoding="utf-8") as f:
        json.dump({"restore_id": restore_id, "old_database": old_database}, f)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(staged)


def unmark(live: Path, restore_id: str) -> None:
    """The restored documents are final: take the marker out of DOCUMENTS_DIR."""
    with suppress(FileNotFoundError):
        os.unlink(live / f"{_MARKER}{_tag(restore_id)}")
    fsync_dir(live)


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths; False where the system cannot (then nothing happened)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def exchange(staged: Path, live: Path) -> bool:
    """Afterwards `live` holds what was staged and `staged` what was live. Returns whether
    there was a live tree (if not, `staged` is gone)."""
    if staged.parent == live:
        _exchange_contents(staged, live)
        return True
    if not os.path.lexists(live):
        os.rename(staged, live)
        return False
    if _renameat2_exchange(staged, live):
        return True
    aside = staged.with_name(staged.name + ".previous")
    os.rename(live, aside)
    try:
        os.rename(staged, live)
    except BaseException:
        os.rename(aside, live)
        raise
    os.rename(aside, staged)
    return True


def undo_exchange(staged: Path, live: Path, had_live: bool) -> None:
    """Put back what `exchange` replaced."""
    if had_live:
        exchange(staged, live)
    else:
        os.rename(live, staged)


def _holding(live: Path, tag: str) -> tuple[Path, Path]:
    holding = live / f"{_HOLDING}{tag}"
    return holding, holding.with_name(holding.name + _MOVING_IN)


def _movable(folder: Path, tag: str) -> list[str]:
    """The entries a contents exchange moves: the users' entries and this restore's marker."""
    mine = f"{_MARKER}{tag}"
    return sorted(n for n in os.listdir(folder) if not n.startswith(RESERVED_PREFIX) or n == mine)


def _exchange_contents(staged: Path, live: Path) -> None:
    """Exchange the top-level entries of `live` (a folder that cannot be renamed) with those
    of `staged` inside it: out into a holding folder, a journal mark, in from `staged`.

    A crash part-way leaves the holding folder (and the mark once the moving-in began), from
    which `_put_back_contents` restores the state before the exchange."""
    tag = _staged_tag(staged)
    holding, moving_in = _holding(live, tag)
    os.mkdir(holding, 0o700)
    fsync_dir(live)
    try:
        for name in _movable(live, tag):
            os.rename(live / name, holding / name)
        fsync_dir(holding)
        with open(moving_in, "x") as f:
            os.fsync(f.fileno())
        fsync_dir(live)
        for name in _movable(staged, tag):
            os.rename(staged / name, live / name)
        os.rmdir(staged)
        os.rename(holding, staged)
    except BaseException:
        _put_back_contents(live, tag)
        raise
    # Done: a journal mark left behind by a failure from here on is only removed later.
    with suppress(OSError):
        fsync_dir(live)
        os.unlink(moving_in)
        fsync_dir(live)


def _put_back_contents(live: Path, tag: str) -> None:
    """Undo an interrupted contents exchange (idempotent; nothing to do after a whole one)."""
    holding, moving_in = _holding(live, tag)
    staged = _inside(live, tag)
    if os.path.isdir(holding):
        if os.path.lexists(moving_in):
            os.makedirs(staged, 0o700, exist_ok=True)
            for name in _movable(live, tag):
                os.rename(live / name, staged / name)
        for name in os.listdir(holding):
            os.rename(holding / name, live / name)
        os.rmdir(holding)
    with suppress(FileNotFoundError):
        os.unlink(moving_in)
    fsync_dir(live)


def leftovers(live: Path, keep: str | None = None) -> list[Path]:
    """Staging paths that restores other than `keep` (a restore id) left beside or in `live`."""
    tags: set[str] = set()
    if live.parent.is_dir():
        prefix = _beside(live, "").name
        tags |= {e.name[len(prefix):] for e in live.parent.iterdir()
                 if e.name.startswith(prefix)}
    if live.is_dir():
        tags |= {e.name.removesuffix(_MOVING_IN).rsplit("-", 1)[1] for e in live.iterdir()
                 if e.name.startswith((_STAGED, _HOLDING, _MARKER))}
    tags.discard(_tag(keep) if keep else "")
    found = []
    for tag in sorted(tags):
        inside, (holding, _) = _inside(live, tag), _holding(live, tag)
        found.append(inside if os.path.lexists(inside) or os.path.lexists(holding)
                     else _beside(live, tag))
    return found


def recover(staged: Path, live: Path, database_exists: Callable[[str], bool]) -> str:
    """Settle what a restore that crashed left at `staged`; returns what was done.

    Restored documents that are live stay only if their restore's database swap committed
    (its old database exists) or it had no database side; otherwise the previous documents
    go back. What is left staged is removed."""
    tag = _staged_tag(staged)
    if staged.parent == live:
        _put_back_contents(live, tag)
    marker = live / f"{_MARKER}{tag}"
    outcome = "removed staged documents"
    if os.path.lexists(marker):
        old_database = json.loads(marker.read_text(encoding="utf-8")).get("old_database")
        if old_database and not database_exists(old_database) and os.path.isdir(staged):
            exchange(staged, live)
            outcome = "put the previous documents back"
        else:  # committed; or nothing to put back, and removing documents is never the answer
            os.unlink(marker)
            outcome = "kept the restored documents"
    shutil.rmtree(staged, ignore_errors=True)
    return outcome


def prepare_staged_root(staged: Path, live: Path) -> None:
    """Give the staged root the live root's permissions (0755 when there is none)."""
    try:
        mode = stat.S_IMODE(os.stat(live).st_mode)
    except FileNotFoundError:
        mode = 0o755
    os.chmod(staged, mode)


def live_documents(root: Path) -> tuple[dict[str, int], list[str]]:
    """{relative path: size} of the regular files under root, and what is not a regular file."""
    skipped: list[str] = []
    if not root.is_dir():
        return {}, skipped
    return {rel: st.st_size for rel, st in _walk(root, skipped)}, skipped


def _user(rel: str) -> str:
    return rel.split("/", 1)[0] if "/" in rel else TOP_LEVEL


def compare(manifest: dict[str, Any], root: Path) -> dict[str, Any]:
    """Per user: documents the restore adds, removes and changes (with bytes), and unchanged.

    Sizes decide first; files of equal size are compared by sha256."""
    archived = {m["path"][len(mf.DOCUMENTS_PREFIX):]: m for m in manifest["members"]
                if m["path"].startswith(mf.DOCUMENTS_PREFIX)}
    live, skipped = live_documents(root)
    users: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("added", "added_bytes", "removed", "removed_bytes", "changed", "changed_bytes",
         "unchanged"), 0))
    for rel, entry in archived.items():
        counts = users[_user(rel)]
        if rel not in live:
            counts["added"] += 1
            counts["added_bytes"] += entry["size"]
        elif live[rel] != entry["size"] or sha256_file(root / rel) != entry["sha256"]:
            counts["changed"] += 1
            counts["changed_bytes"] += entry["size"]
        else:
            counts["unchanged"] += 1
    for rel, size in live.items():
        if rel not in archived:
            counts = users[_user(rel)]
            counts["removed"] += 1
            counts["removed_bytes"] += size
    rows = [{"user": user, **counts} for user, counts in sorted(users.items())]
    totals = {key: sum(r[key] for r in rows) for key in rows[0] if key != "user"} if rows else {}
    return {"users": rows, "totals": totals, "not_regular_files": skipped}
