"""Rows per table and large objects, counted while pg_dump's output streams by.

The counting is the restore's own dump reader (`restore.sqlscan.DumpScanner`): it follows
psql's lexer, so a string or comment that looks like a COPY line is not taken for one, and a
restore preview counts the same way. Inside COPY data it is one `bytes.count` per chunk, so it
costs little next to pg_dump itself (README, Performance).
"""

from __future__ import annotations

from typing import Any

from backup_pipeline.errors import ArchiveError
from backup_pipeline.restore.sqlscan import DumpScanner


class RowCounter:
    """Feed the dump's chunks in order, then `contents()`. A dump the reader refuses (it would
    refuse it at restore too) stops the count: `contents()` is then None and `error` says why;
    the backup itself goes on."""

    def __init__(self) -> None:
        self._scanner: DumpScanner | None = DumpScanner()
        self.error: str | None = None

    def feed(self, chunk: bytes) -> None:
        if self._scanner is None:
            return
        try:
            self._scanner.feed(chunk)
        except ArchiveError as exc:
            self._stop(exc)

    def _stop(self, exc: ArchiveError) -> None:
        self._scanner = None
        self.error = f"rows not counted: {exc}"

    def contents(self) -> dict[str, Any] | None:
        """{"tables": {`schema.table` as pg_dump names it: rows}, "table_rows", "large_objects"}"""
        if self._scanner is None:
            return None
        try:
            result = self._scanner.finish()
        except ArchiveError as exc:
            self._stop(exc)
            return None
        return {"tables": dict(sorted(result.tables.items())),
                "table_rows": sum(result.tables.values()),
                "large_objects": result.large_objects}
