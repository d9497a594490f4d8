"""Printing results: one JSON object with --json, readable text otherwise."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from backup_pipeline.postgres import redact


@dataclass
class Result:
    """What a command returns: the JSON payload, its text form, and the exit code."""

    data: dict[str, Any]
    text: str = ""
    exit_code: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def emit(result: Result, *, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.data, indent=2, default=str))
    else:
        print(result.text or format_record(result.data))
    if result.error:
        print(f"backup-pipeline: error: {redact(result.error)}", file=sys.stderr)
    return result.exit_code


def format_record(record: dict[str, Any]) -> str:
    width = max((len(k) for k in record), default=0)
    lines = []
    for key, value in record.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, default=str)
        lines.append(f"{key.ljust(width)}  {'' if value is None else value}")
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in out)
