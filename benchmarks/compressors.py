#!/usr/bin/env python3
"""How big the dump gets with each compressor: ISA-L's and libdeflate's levels against zlib's.

    .venv/bin/python benchmarks/compressors.py --database bench_s1
    .venv/bin/python benchmarks/compressors.py --file ../shared/datasets/pagila/pagila-data.sql

Streams the plain dump of a database on the local server (as the backup takes it), or a file,
once through every compressor side by side in 1 MiB chunks, and prints each one's output size,
its size against zlib level 6 (what the naive pipeline's `gzip -6` writes) and its CPU time.
It answers why the archive cannot come within 3% of the naive one while it is compressed with
ISA-L (its best level is not a match for zlib -6 on SQL text), and what each libdeflate level
costs: those are measured as the backup uses them, each 1 MiB chunk a gzip member of its own
(`backup_pipeline.archive.compression`).
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import deflate
from isal import isal_zlib

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backup_pipeline.postgres import client_env, with_database  # noqa: E402

CHUNK = 1 << 20


@dataclass
class Candidate:
    name: str
    make: Callable[[], object]
    size: int = 0
    cpu: float = 0.0

    def __post_init__(self) -> None:
        self._compressor = self.make()

    def feed(self, chunk: bytes) -> None:
        started = time.process_time()
        self.size += len(self._compressor.compress(chunk))
        self.cpu += time.process_time() - started

    def finish(self) -> None:
        started = time.process_time()
        self.size += len(self._compressor.flush())
        self.cpu += time.process_time() - started


class ChunkMembers:
    """The compressobj interface over a whole-buffer compressor: a gzip member per chunk."""

    def __init__(self, compress: Callable[[bytes], bytes]):
        self._compress = compress

    def compress(self, chunk: bytes) -> bytes:
        return self._compress(chunk)

    def flush(self) -> bytes:
        return b""


def candidates() -> list[Candidate]:
    made = [Candidate(f"ISA-L level {level}",
                      lambda level=level: isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31))
            for level in (1, 2, 3)]
    made.append(Candidate("ISA-L level 3, memLevel 9 (largest tables)",
                          lambda: isal_zlib.compressobj(3, isal_zlib.DEFLATED, 31, 9)))
    made += [Candidate(f"zlib level {level}",
                       lambda level=level: zlib.compressobj(level, zlib.DEFLATED, 31))
             for level in (1, 3, 6, 9)]
    made += [Candidate(f"libdeflate level {level}, a member per MiB",
                       lambda level=level: ChunkMembers(
                           functools.partial(deflate.gzip_compress, compresslevel=level)))
             for level in (1, 4, 5, 6, 7, 9, 12)]
    return made


def dump_chunks(database: str, server_url: str) -> Iterator[bytes]:
    conninfo, env = client_env(with_database(server_url, database))
    with subprocess.Popen(["pg_dump", "--format=plain", "--no-password",
                           "--exclude-schema=backup", f"--dbname={conninfo}"],
                          stdout=subprocess.PIPE, env=env) as proc:
        while chunk := proc.stdout.read(CHUNK):
            yield chunk
    if proc.returncode != 0:
        raise SystemExit(f"pg_dump of {database} failed (exit {proc.returncode})")


def file_chunks(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk


def measure(chunks: Iterator[bytes]) -> tuple[int, list[Candidate]]:
    made = candidates()
    total = 0
    for chunk in chunks:
        total += len(chunk)
        for candidate in made:
            candidate.feed(chunk)
    for candidate in made:
        candidate.finish()
    return total, made


def report(source: str, total: int, made: list[Candidate]) -> str:
    reference = next(c for c in made if c.name == "zlib level 6")
    lines = [f"{source}: {total / 1e6:,.2f} MB of SQL", "",
             "| compressor | output (MB) | ratio | vs zlib -6 | CPU (s) |",
             "|---|---:|---:|---:|---:|"]
    for c in made:
        lines.append(f"| {c.name} | {c.size / 1e6:,.2f} | {c.size / total:.3f} | "
                     f"{100 * (c.size / reference.size - 1):+.1f}% | {c.cpu:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--database", help="a database on the server: its plain dump")
    source.add_argument("--file", type=Path, nargs="+", help="SQL file(s), read in order")
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server (database postgres); default: the local one")
    args = parser.parse_args()
    if args.database:
        name = f"pg_dump of {args.database}"
        total, made = measure(dump_chunks(args.database, args.server_url))
    else:
        name = " + ".join(p.name for p in args.file)
        total, made = measure(file_chunks(args.file))
    print(report(name, total, made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
