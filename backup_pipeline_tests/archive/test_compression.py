"""Compression levels and threads: what the settings accept, and members that read back whole."""

from __future__ import annotations

import gzip
import io
import os
import random
import tracemalloc

import pytest

from backup_pipeline.archive.compression import (
    CHUNK,
    DEFAULT_LEVEL,
    Compression,
    ParallelMembers,
    cores,
    parse_level,
    parse_threads,
)
from backup_pipeline.errors import ConfigError
from backup_pipeline.settings import Settings

LEVELS = ["fast", "balanced", "small", "1", "12"]


def sql_like(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = ("oil", "brake", "tyre", "garage", "invoice", "Berlin", "Lisbon", "Anna", "Jonas",
             "2024-03-01", "paid")
    out = bytearray()
    while len(out) < size:
        out += (f"{rng.randrange(10**6)}\t{' '.join(rng.choices(words, k=6))}\t"
                f"{rng.random():.4f}\n").encode()
    return bytes(out[:size])


def test_levels_by_name_and_number():
    assert parse_level("") == DEFAULT_LEVEL
    assert parse_level(" Fast ") == "fast"
    assert parse_level("06") == "6"
    assert Compression("fast").library == "isal" and Compression("fast").library_level == 3
    assert Compression("balanced").library == "libdeflate"
    assert Compression("small").library_level == 9
    assert Compression("12", 2).describe() == "12 (libdeflate level 12, 2 threads)"


@pytest.mark.parametrize("bad", ["0", "13", "gzip", "-1", "6.5", "best"])
def test_a_level_that_does_not_exist_is_refused_in_one_line(bad: str):
    with pytest.raises(ConfigError, match="BACKUP_COMPRESSION_LEVEL must be fast, balanced, "
                       "small or a libdeflate level 1-12") as err:
        parse_level(bad)
    assert repr(bad) in str(err.value) and "\n" not in str(err.value)


def test_threads_default_to_every_core_and_refuse_nonsense():
    assert parse_threads("") == min(cores(), 64)
    assert parse_threads("3") == 3
    for bad in ("0", "-2", "two", "65", "1.5"):
        with pytest.raises(ConfigError, match="BACKUP_COMPRESSION_THREADS must be a whole "
                           "number from 1 to 64"):
            parse_threads(bad)


def test_settings_read_both_from_the_environment():
    settings = Settings.from_env({"DATABASE_URL": "dbname=x", "BACKUP_COMPRESSION_LEVEL": "small",
                                  "BACKUP_COMPRESSION_THREADS": "2"})
    assert settings.compression == Compression("small", 2)
    assert Settings.from_env({"DATABASE_URL": "dbname=x"}).compression.level == DEFAULT_LEVEL
    with pytest.raises(ConfigError, match="BACKUP_COMPRESSION_THREADS"):
        Settings.from_env({"DATABASE_URL": "dbname=x", "BACKUP_COMPRESSION_THREADS": "many"})


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("level", LEVELS)
def test_members_decompress_to_the_input_in_order(level: str, threads: int):
    data = sql_like(3 * CHUNK + 12_345, seed=threads)
    out = io.BytesIO()
    members = ParallelMembers(out, Compression(level, threads))
    pos = 0
    for size in (1, 1000, CHUNK, CHUNK - 1, 70_000, len(data)):  # odd sizes, whole chunks
        members.write(data[pos:pos + size])
        pos += size
    members.flush()
    assert members.uncompressed == len(data)
    assert gzip.decompress(out.getvalue()) == data
    assert len(out.getvalue()) < len(data) / 2


def test_ready_bytes_keep_their_place_between_compressed_ones():
    out = io.BytesIO()
    members = ParallelMembers(out, Compression("balanced", 2))
    parts = [sql_like(CHUNK + 5, 1), sql_like(300, 2), sql_like(2 * CHUNK, 3)]
    members.write(parts[0])
    members.write_ready(gzip.compress(b"<stored>", mtime=0))
    members.write(parts[1])
    members.end_member()
    members.write(parts[2])
    members.flush()
    assert gzip.decompress(out.getvalue()) == parts[0] + b"<stored>" + parts[1] + parts[2]


def test_memory_stays_bounded_however_much_is_written():
    """64 MiB through two threads: at most a few chunks are alive at once."""
    block = sql_like(CHUNK // 2)

    class Discard:
        def write(self, data: bytes) -> int:
            return len(data)

    tracemalloc.start()
    try:
        members = ParallelMembers(Discard(), Compression("fast", 2))
        for _ in range(128):
            members.write(block)
        members.flush()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * CHUNK


def test_abandon_drops_what_is_in_flight():
    out = io.BytesIO()
    members = ParallelMembers(out, Compression("small", 2))
    members.write(os.urandom(CHUNK // 3))
    members.abandon()
    members.flush()
    assert out.getvalue() == b""
