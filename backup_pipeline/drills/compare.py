"""What a drill compares: every table's rows in the scratch database with the manifest's
`contents`, and every staged document's sha256 (re-read from disk) with the manifest's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive.reader import sha256_file
from backup_pipeline.postgres import connect


@dataclass
class Comparison:
    tables: dict[str, dict[str, int | None]] = field(default_factory=dict)
    documents_checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    counts_in_manifest: bool = True


def table_counts(url: str, names: list[str]) -> dict[str, int | None]:
    """Rows of each table (as pg_dump names it, `schema.table` possibly quoted) in the database
    at `url`, its own rows only (ONLY: a parent's COPY carries no child rows); None when the
    table is not there. The name is resolved by the server (to_regclass), never spliced in."""
    counts: dict[str, int | None] = {}
    with connect(url) as conn:
        for name in names:
            found = conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)", (name,)).fetchone()
            if found is None:
                counts[name] = None
                continue
            counts[name] = conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(
                sql.Identifier(*found))).fetchone()[0]
    return counts


def compare_tables(result: Comparison, manifest: dict[str, Any], url: str) -> None:
    contents = manifest.get("contents")
    if not contents:
        result.counts_in_manifest = False  # an archive made before rows were counted
        return
    expected: dict[str, int] = contents["tables"]
    actual = table_counts(url, sorted(expected))
    for name in sorted(expected):
        result.tables[name] = {"expected": expected[name], "actual": actual[name]}
        if actual[name] is None:
            result.mismatches.append(f"table {name}: missing in the restored database")
        elif actual[name] != expected[name]:
            result.mismatches.append(f"table {name}: {actual[name]} rows restored, the manifest "
                                     f"says {expected[name]}")


def compare_documents(result: Comparison, manifest: dict[str, Any], root: Path) -> None:
    """Each document the manifest lists, re-read from where it landed: what is on disk is what
    was backed up."""
    for member in manifest["members"]:
        name = member["path"]
        if not name.startswith(mf.DOCUMENTS_PREFIX):
            continue
        path = root / name[len(mf.DOCUMENTS_PREFIX):]
        result.documents_checked += 1
        if not path.is_file():
            result.mismatches.append(f"document {name}: missing after the restore")
        elif sha256_file(path) != member["sha256"]:
            result.mismatches.append(f"document {name}: sha256 differs from the manifest's")
