"""The documents side of a restore: a staged tree beside the live one, swapped in by rename.

Staging is a sibling of DOCUMENTS_DIR (same filesystem, so the swap is a rename, and outside
the tree, so a safety backup never archives it). On Linux the swap is one atomic
renameat2(RENAME_EXCHANGE); elsewhere two renames, undone if the second fails. Either way the
staging path then holds the previous tree, removed only after the whole restore succeeded.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections import defaultdict
from pathlib import Path
from typing import Any

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive.reader import sha256_file
from backup_pipeline.backup.documents import _walk

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
TOP_LEVEL = "(top level)"


def staging_path(documents_dir: Path, restore_id: str) -> Path:
    return documents_dir.parent / f".{documents_dir.name}.restore-{restore_id.replace('-', '')[:8]}"


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


def swap_problem(documents_dir: Path) -> str | None:
    """Why the tree cannot be swapped by renaming it with a sibling, if it cannot."""
    if os.path.ismount(documents_dir):
        return (f"DOCUMENTS_DIR {documents_dir} is a mount point, and a restore swaps it with a "
                "folder beside it: mount the volume one level up (for example at "
                f"{documents_dir.parent}) and keep the documents in a folder inside it")
    try:
        if os.stat(documents_dir).st_dev != os.stat(documents_dir.parent).st_dev:
            return (f"DOCUMENTS_DIR {documents_dir} is on another filesystem than its parent "
                    "folder, where a restore stages the documents")
    except FileNotFoundError:
        pass
    return None


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
