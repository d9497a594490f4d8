"""What a restore would change, computed from a verified archive and the live system; it reads
and never writes (other than nothing: the caller records the result)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import sql

from backup_pipeline.postgres import connect, database_name, describe, server_version
from backup_pipeline.progress import human_bytes
from backup_pipeline.restore import database, documents, roles
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.verify import (
    CheckedArchive,
    declared_sql_bytes,
    documents_declared,
)
from backup_pipeline.settings import Settings

SPACE_MARGIN = 64 * 1024 * 1024

_LIVE_TABLES = """
SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname <> 'backup'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 3
"""


def free_bytes(path: Path) -> int:
    """Free space on the filesystem that holds `path` (or its nearest existing ancestor)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def space_needs(settings: Settings, manifest: dict[str, Any], scope: str,
                safety_estimate: int = 0, database_free: int | None = None) -> list[str]:
    """Shortfalls of local disk space for staging this archive (empty when it fits), the
    database server's (`database_free`, when known) against the SQL the manifest declares."""
    short = []
    if scope in ("database", "both") and database_free is not None:
        need = declared_sql_bytes(manifest)
        if need > database_free:
            short.append(f"the dump declares {human_bytes(need)} of SQL, the database server "
                         f"has {human_bytes(database_free)} free")
    if scope in ("documents", "both"):
        _, docs_bytes = documents_declared(manifest)
        need, free = docs_bytes + SPACE_MARGIN, free_bytes(
            documents.staging_parent(settings.documents_dir.resolve()))
        if need > free:
            short.append(f"staging the documents needs {human_bytes(need)} beside "
                         f"{settings.documents_dir}, {human_bytes(free)} free")
    need = safety_estimate + SPACE_MARGIN  # the dump streams into psql: it is not staged
    free = free_bytes(settings.backup_dir)
    if need > free:
        short.append(f"the safety backup needs about {human_bytes(need)} in "
                     f"{settings.backup_dir}, {human_bytes(free)} free")
    return short


def _live_rows(conn) -> dict[str, int]:
    counts = {}
    for schema, table, name in conn.execute(_LIVE_TABLES).fetchall():
        counts[name] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(schema, table))).fetchone()[0]
    return counts


def _newer_backups(conn, backup_id: str, taken_at: str | None) -> list[tuple[str, str]]:
    if not taken_at:
        return []
    rows = conn.execute(
        "SELECT id::text, started_at FROM backup.backup_history WHERE status = 'completed'"
        " AND id <> %s AND started_at > %s ORDER BY started_at DESC",
        (backup_id, datetime.fromisoformat(taken_at.replace("Z", "+00:00")))).fetchall()
    return [(r[0], r[1].isoformat()) for r in rows]


def build(settings: Settings, *, restore_id: str, backup: dict[str, Any], scope: str,
          checked: CheckedArchive) -> dict[str, Any]:
    manifest = checked.manifest
    source = manifest.get("source") or {}
    warnings: list[str] = []
    with connect(settings.database_url) as conn:
        live_version = server_version(conn)
        live_rows = _live_rows(conn)
        live_lo = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0]
        newer = _newer_backups(conn, backup["id"], manifest.get("started_at"))
        db_free = database.database_free_bytes(conn, settings.database_url)
        role_notes = _role_notes(settings, conn, backup, checked) \
            if scope in ("database", "both") else {"missing": [], "warnings": []}
    tables = []
    for name in sorted(set(checked.tables) | set(live_rows)):
        archive, live = checked.tables.get(name), live_rows.get(name)
        tables.append({"table": name, "archive_rows": archive, "live_rows": live,
                       "change": (archive or 0) - (live or 0)})
    archive_major = database.server_major(source.get("server_version"))
    live_major = database.server_major(live_version)
    if archive_major and live_major and archive_major != live_major:
        warnings.append(f"the archive was dumped from PostgreSQL {archive_major}, the server "
                        f"runs {live_major}: the dump may not load, or load differently")
    if newer:
        warnings.append(f"the archive is older than {len(newer)} other backups in the catalog "
                        f"(newest {newer[0][0]} of {newer[0][1]}): what changed since is lost "
                        "unless it is in the safety backup this restore takes first")
    docs = documents.compare(manifest, settings.documents_dir)
    if scope in ("documents", "both") and docs["not_regular_files"]:
        warnings.append(f"{len(docs['not_regular_files'])} symlinks or special files in "
                        "DOCUMENTS_DIR are not in any archive and will be gone after the restore")
    warnings.extend(f"disk space short: {s}" for s in space_needs(
        settings, manifest, scope, safety_estimate=int(backup.get("size_bytes") or 0)))
    if scope in ("database", "both") and db_free is not None and checked.sql_bytes > db_free:
        warnings.append(f"disk space short: the database server has {human_bytes(db_free)} "
                        f"free, the dump is {human_bytes(checked.sql_bytes)} of SQL and the "
                        "old database is kept until the new one is in place")
    warnings.extend(role_notes.pop("warnings"))
    return {
        "restore_id": restore_id,
        "scope": scope,
        "backup": {
            "id": backup["id"], "file_name": backup.get("file_name"),
            "backup_type": backup.get("backup_type"), "trigger": manifest.get("trigger"),
            "taken_at": manifest.get("started_at"), "created_at": manifest.get("created_at"),
            "format_version": manifest.get("format_version"),
            "server_version": source.get("server_version"),
            "pg_dump_version": source.get("pg_dump_version"),
            "source_database": source.get("database"),
        },
        "live": {"database": describe(settings.database_url), "server_version": live_version,
                 "documents_dir": str(settings.documents_dir)},
        "verified": {"members": checked.members, "bytes_checked": checked.bytes_checked,
                     "sql_bytes": checked.sql_bytes, "dump_complete": checked.dump_complete},
        "tables": tables,
        "large_objects": {"archive": checked.large_objects, "live": live_lo},
        "documents": docs,
        "roles": {"named": sorted(checked.roles), **role_notes},
        "warnings": warnings,
    }


def _role_notes(settings: Settings, conn, backup: dict[str, Any], checked: CheckedArchive
                ) -> dict[str, Any]:
    """Roles the dump names that this server lacks, and for an archive not made here who
    will own its objects (see restore.roles); with the warnings that say so."""
    missing = sorted(r for r in checked.roles if not roles.exists(conn, roles.pg_name(r)))
    notes: dict[str, Any] = {"missing": missing, "warnings": []}
    if missing:
        notes["warnings"].append(
            f"the dump uses {len(missing)} roles this server lacks, which the restore creates "
            f"(NOLOGIN, no password) before they are named: {', '.join(missing)}")
    if backup.get("backup_type") != "uploaded":
        return notes
    text = ("this archive was not made here (uploaded): psql loads it restricted to SQL, "
            "connected as a temporary role without superuser or other server-wide rights "
            "that owns only the new database, so SQL needing more (COPY ... TO PROGRAM, "
            "server files, untrusted languages, SET ROLE to a superuser) fails the restore")
    try:
        owner = roles.content_owner(settings, conn, database_name(settings.database_url))
    except RestoreError as exc:
        notes["warnings"].append(f"{text}; the restore would be refused: {exc}")
        return notes
    kept = sorted(o for o in checked.owners if o in missing or roles.lendable(conn, o))
    moved = sorted(set(checked.owners) - set(kept) - {"pg_database_owner"})
    notes["owner"] = owner
    notes["warnings"].append(
        f"{text}; its objects go to {owner}"
        + (f", except those of {', '.join(kept)}, which keep their owner" if kept else "")
        + (f" (objects it gives to {', '.join(moved)} go to {owner} too)" if moved else ""))
    return notes


def _cell(value: Any) -> str:
    text = "–" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(preview: dict[str, Any]) -> str:
    """The preview as the markdown the Dagster UI shows in the run's metadata."""
    b = preview["backup"]
    lines = [
        f"**Restore preview** of backup `{b['id']}` ({b['backup_type']}, taken {b['taken_at']}, "
        f"PostgreSQL {b['server_version']}, {b['pg_dump_version']}) into "
        f"`{preview['live']['database']}` (PostgreSQL {preview['live']['server_version']}); "
        f"scope: {preview['scope']}.",
        "",
    ]
    if preview["warnings"]:
        lines += ["**Warnings**", ""] + [f"- {_cell(w)}" for w in preview["warnings"]] + [""]
    lines += ["| table | rows in archive | rows now | change |", "|---|---:|---:|---:|"]
    for t in preview["tables"]:
        lines.append(f"| {_cell(t['table'])} | {_cell(t['archive_rows'])} | "
                     f"{_cell(t['live_rows'])} | {t['change']:+d} |")
    lo = preview["large_objects"]
    lines.append(f"| (large objects) | {lo['archive']} | {lo['live']} | "
                 f"{lo['archive'] - lo['live']:+d} |")
    lines += ["", "| user | added | removed | changed | unchanged |", "|---|---:|---:|---:|---:|"]
    for u in preview["documents"]["users"]:
        lines.append(
            f"| {_cell(u['user'])} | {u['added']} ({human_bytes(u['added_bytes'])}) | "
            f"{u['removed']} ({human_bytes(u['removed_bytes'])}) | "
            f"{u['changed']} ({human_bytes(u['changed_bytes'])}) | {u['unchanged']} |")
    return "\n".join(lines)
