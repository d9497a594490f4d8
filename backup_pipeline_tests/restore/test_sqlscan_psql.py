"""The scanner against the real psql: thousands of generated scripts built from the fragments
that trip lexers up (every kind of quote, escapes, dollar quotes and near-tags, nested and
line comments, carriage returns, parentheses, CREATE FUNCTION ... BEGIN, COPY in many spellings
with awkward data) with backslash commands dropped in at random. Every script psql runs a
backslash command from must be one the scanner refuses."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from backup_pipeline.errors import ArchiveError
from backup_pipeline.postgres import client_env
from backup_pipeline.restore.database import PsqlLoader
from backup_pipeline.restore.errors import RestoreError
from backup_pipeline.restore.sqlscan import DumpScanner

CASES = 3000
SEED = 20251203

FRAGMENTS = [
    "'", "''", "'abc'", "'a\\'", "'a\\\\'", "E'", "e'x\\'y'", "E'\\\\'", "E'a\\", "N'n'",
    "B'01'", "X'ff'", "U&'a'", "U&\"a\"", "u&x", "\"", "\"a\"\"b\"", "$$", "$a$", "$b$", "$a",
    "a$", "text$a$", "text/**/$a$", "text $a$", "1$a$", "$1", "1e'", ".5e'", "x1e'", "$1e'",
    "/*", "*/", "/* a /* b */ c */", "--", "-- c\n", "-- c\r", "/**/", "*/*", "/*/", "(", ")",
    ";", ";\n", " ", "\n", "\r", "\r\n", "\t", "SELECT", "select 1", "text", "CREATE FUNCTION",
    "create or replace procedure", "begin", "BEGIN ATOMIC", "case", "end", "COPY", ":foo",
    ":'foo'", ":\"foo\"", "::text", ":=", ":ON_ERROR_STOP", "'a'\r'b'", "E'a'\r'\\''",
    "'a'\n'b'", "'x'  -- c\r 'y'", "\\", "$q$ \\ $q$", "\"\\\"",
]
COPY_STATEMENTS = [
    "COPY t FROM stdin;\n", "COPY t (a) FROM stdin WITH (FORMAT text);\n",
    "copy public.t(a,b) from STDIN with csv;\n", "COPY \"T x\" FROM STDOUT;\n",
    "COPY /* c */ t\n FROM -- x\n stdin;\n", "COPY t TO stdout;\n",
    "COPY (select 1) TO STDOUT;\n", "SELECT 1; COPY t FROM stdin;\n",
    "COPY t FROM stdin WITH (FORMAT csv);\n", "COPY t FROM stdin; SELECT 2;\n",
    "COPY t(a) FROM stdin WHERE a > '1';\n",
]
DATA_LINES = ["a\tb\n", "'\n", "\\.\n", "\\N\n", "\\.x\n", "\"\n", "$a$\n", "\\.\r\n",
              "x\\'\n", "/*\n", "--\n", "\\! echo {mark}\n", "\\echo {mark}\n"]
METAS = ["\\echo {mark}\n", "\\! echo {mark}\n", "\\qecho {mark}\n", "\\zzz\n", "\\.\n",
         " \\echo {mark}\n"]


def generate(rng: random.Random, case: int) -> str:
    """Statements of random fragments (most end with ';'), COPY blocks and backslash commands."""
    parts: list[str] = []
    for _ in range(rng.randint(1, 5)):
        roll = rng.random()
        if roll < 0.5:
            parts.extend(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 5)))
            if rng.random() < 0.8:
                parts.append(";\n")
        elif roll < 0.7:
            parts.append(rng.choice(COPY_STATEMENTS))
            parts.extend(rng.choice(DATA_LINES) for _ in range(rng.randint(0, 4)))
            if rng.random() < 0.9:
                parts.append("\\.\n")
        else:
            parts.append(rng.choice(("", "\n", "SELECT 1;\n", "SELECT 'a';")))
            parts.append(rng.choice(METAS))
    return "".join(parts).replace("{mark}", f"MARK_{case}_x")


def scanner_refuses(sql: bytes) -> bool:
    scanner = DumpScanner()
    try:
        scanner.feed(sql)
        scanner.finish()
    except ArchiveError:
        return True
    return False


def run_psql(url: str, tmp: Path, scripts: list[bytes]) -> tuple[str, str]:
    """Each script runs from a file of its own (`\\i`: a fresh lexer, COPY data read from that
    file), without ON_ERROR_STOP; what is left over between them is rolled back and reset."""
    master = []
    for n, sql in enumerate(scripts):
        (tmp / f"case_{n}.sql").write_bytes(sql)
        master.append(f"\\i {tmp}/case_{n}.sql\nROLLBACK;\n"
                      "SET standard_conforming_strings = on;\nSET client_encoding = 'UTF8';\n")
    (tmp / "master.sql").write_text("".join(master))
    conninfo, env = client_env(url)
    env = {**env, "PGCLIENTENCODING": "UTF8"}
    done = subprocess.run(
        ["psql", "-X", "-q", "-o", "/dev/null", "-v", "ON_ERROR_ROLLBACK=on", "-d", conninfo,
         "-f", str(tmp / "master.sql")],
        capture_output=True, env=env, cwd=tmp, timeout=600)
    return (done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"))


def test_psql_runs_no_backslash_command_the_scanner_passed(databases, tmp_path):
    url = databases.create()
    setup = ("CREATE TABLE t (a text, b text); CREATE TABLE \"T x\" (a text, b text);")
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", client_env(url)[0],
                    "-c", setup], check=True, capture_output=True, env=client_env(url)[1])
    rng = random.Random(SEED)
    scripts = [generate(rng, n).encode() for n in range(CASES)]
    stdout, stderr = run_psql(url, tmp_path, scripts)

    ran = {int(m) for m in re.findall(r"MARK_(\d+)_x", stdout)}
    ran |= {int(m) for m in re.findall(r"case_(\d+)\.sql:\d+: (?:error: )?invalid command",
                                       stderr)}
    refused = {n for n, sql in enumerate(scripts) if scanner_refuses(sql)}
    missed = sorted(ran - refused)
    assert not missed, "psql ran a backslash command from scripts the scanner passed: " + \
        "; ".join(repr(scripts[n].decode()) for n in missed[:5])
    # the generator reaches both sides: psql runs commands from many scripts, and the scanner
    # passes many scripts that hold a backslash command psql does not run
    assert len(ran) > CASES // 4
    passed_with_backslash = [n for n in range(CASES) if n not in refused
                             and b"\\" in scripts[n]]
    assert len(passed_with_backslash) > CASES // 40


def test_restricted_psql_stops_a_command_that_bypasses_the_scanner(databases, app_env, tmp_path):
    """The second guard, fed directly (the scanner refuses every way found to hide a
    command): restricted, psql fails on the command instead of running it."""
    owned = tmp_path / "owned"
    loader = PsqlLoader(app_env.settings, databases.create(), tmp_path / "psql.err")
    loader.begin(restricted=True)
    loader.write(f"SELECT 1;\n\\! touch {owned}\n".encode())
    with pytest.raises(RestoreError, match="backslash commands are restricted"):
        loader.finish()
    assert not owned.exists()
