"""Rows per table and large objects, counted while the dump streams, recorded in the manifest."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import psycopg
import pytest

from backup_pipeline.archive import manifest as mf
from backup_pipeline.archive import reader
from backup_pipeline.backup.rowcount import RowCounter
from backup_pipeline.errors import ArchiveError
from backup_pipeline.postgres import client_env
from backup_pipeline_tests.conftest import AppEnv, psql
from backup_pipeline_tests.helpers import run_backup_job, run_cli, table_fingerprints

# what trips a naive counter: a quoted name, an empty table, data lines that look like the
# end marker or a COPY line, a comment with a COPY line in it, and large objects
TRICKY_SQL = r"""
CREATE TABLE public."odd ""x"" name" (id int, t text);
INSERT INTO public."odd ""x"" name" SELECT g, E'\\.' FROM generate_series(1, 7) g;
INSERT INTO public."odd ""x"" name" VALUES (8, E'\nCOPY public.x (a) FROM stdin;\n\\.\n');
CREATE TABLE public.empty_table (id int);
COMMENT ON TABLE public.empty_table IS
  E'x\n-- Data for Name: fake; Type: TABLE DATA; Schema: p\nCOPY public.fake (a) FROM stdin;\n';
SELECT lo_from_bytea(0, decode(repeat('ab', 5000), 'hex')) FROM generate_series(1, 3);
"""


def _raw_dump(url: str) -> bytes:
    conninfo, env = client_env(url)
    return subprocess.run(["pg_dump", "--format=plain", "--exclude-schema=backup", "-d",
                           conninfo], capture_output=True, env=env, check=True).stdout


def _count(data: bytes, size: int) -> dict:
    counter = RowCounter()
    for i in range(0, len(data), size):
        counter.feed(data[i:i + size])
    return counter.contents()


@pytest.fixture
def tricky_url(pagila_url: str) -> str:
    psql(pagila_url, input=TRICKY_SQL)
    return pagila_url


def test_counts_match_the_database_at_any_chunking(tricky_url: str):
    data = _raw_dump(tricky_url)
    truth = {name: rows for name, (rows, _) in table_fingerprints(tricky_url).items()}
    # pagila's partitioned payment table has no rows of its own: pg_dump copies the partitions
    del truth["public.payment"]
    for size in (len(data), 1 << 20, 4093, 7):
        contents = _count(data, size)
        assert contents["tables"] == truth, size
        assert contents["large_objects"] == 3, size
        assert contents["table_rows"] == sum(truth.values())
    assert contents["tables"]['public."odd ""x"" name"'] == 8
    assert contents["tables"]["public.empty_table"] == 0
    assert "public.fake" not in contents["tables"]


def test_byte_by_byte_on_a_small_dump(databases):
    url = databases.create()
    psql(url, input=TRICKY_SQL)
    contents = _count(_raw_dump(url), 1)
    assert contents["tables"] == {'public."odd ""x"" name"': 8, "public.empty_table": 0}
    assert contents["large_objects"] == 3


def test_a_dump_the_restore_would_refuse_is_not_counted():
    counter = RowCounter()
    counter.feed(b"SELECT 1;\n\\! rm -rf /\n")
    assert counter.contents() is None
    assert counter.error.startswith("rows not counted: ")


def test_the_manifest_records_the_counts_and_show_prints_them(app_env: AppEnv):
    with psycopg.connect(app_env.database_url, autocommit=True) as conn:
        conn.execute("SELECT lo_from_bytea(0, 'blob')")
        actors = conn.execute("SELECT count(*) FROM public.actor").fetchone()[0]
    result = run_backup_job(trigger="test")
    assert result.success
    row = result.output_for_node("record_backup")
    manifest = reader.read_manifest(app_env.backup_dir / row["file_name"])
    contents = manifest["contents"]
    assert contents["tables"]["public.actor"] == actors
    assert contents["large_objects"] == 1
    assert contents["table_rows"] == sum(contents["tables"].values())
    done = run_cli("--json", "show", row["id"], env=app_env.environ())
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["manifest"]["contents"]
    assert shown["tables"]["public.actor"] == actors and shown["large_objects"] == 1


def test_manifests_without_counts_stay_valid_and_bad_counts_are_refused():
    members = [{"path": mf.DUMP_MEMBER, "size": 1, "sha256": "0" * 64}]
    old = mf.build(backup_id="b", backup_type="manual", trigger="t",
                   started_at=datetime.now(UTC), source={}, members=members)
    assert "contents" not in old
    assert mf.parse(mf.encode(old))["members"] == members
    good = {**old, "contents": {"tables": {"public.a": 2}, "table_rows": 2, "large_objects": 0}}
    assert mf.parse(mf.encode(good))["contents"]["tables"] == {"public.a": 2}
    for bad in ({"tables": {"public.a": -1}, "table_rows": 0, "large_objects": 0},
                {"tables": [], "table_rows": 0, "large_objects": 0},
                {"tables": {}, "table_rows": 0, "large_objects": True}, "many"):
        with pytest.raises(ArchiveError, match="contents"):
            mf.parse(mf.encode({**old, "contents": bad}))
