"""The reference datasets: a database of the application's shape and a documents tree.

Two kinds (KINDS): `realistic` (benchmarks/realistic.py: names, addresses, free text, jsonb, as
an application's records are) and `synthetic` (this module and benchmarks/fill.sql: the
application's tables only, seeded pseudo-random rows from small word lists; the dataset of the
measurements before issue 16). Deterministic for a given kind and scale, built once and cached:
the database (`bench_real_s<scale>`, `bench_s<scale>`) on the server, the documents under
`<cache>/real_s<scale>/documents` or `<cache>/s<scale>/documents`. A dataset is reused only when
both carry the stamp written after they were completely built.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from backup_pipeline.catalog.migrate import migrate
from backup_pipeline.postgres import client_env, with_database
from benchmarks import realistic, vocabulary

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "scripts" / "demo_schema.sql"
FILL = Path(__file__).resolve().parent / "fill.sql"
VERSION = 2
# demo_schema.sql rows per bench scale unit: ~270 MB of plain dump at scale 1 (fuel logs and
# maintenance records dominate); documents: ~3 MB per user folder, ~260 MB at scale 1.
SCHEMA_SCALE_PER_UNIT = 770
DOCUMENT_USERS_PER_UNIT = 85
MTIME = 1_704_067_200  # 2024-01-01: fixed, so tar headers are the same in every build

_VOCABULARY = ("oil change brake pads tyres rotated inspection passed coolant flushed battery "
          "replaced wipers filter cabin air engine spark plugs alignment checked warranty "
          "invoice paid cash card garage workshop dealer appointment mileage recall notice "
          "registration insurance renewal premium policy claim windscreen chip repaired "
          "transmission fluid timing belt water pump exhaust muffler suspension shock "
          "absorbers headlight bulb parking sensor software update the a of and for with "
          "next due at km on by before after front rear left right")
_WORDS = tuple(_VOCABULARY.split())


@dataclass
class Dataset:
    scale: float
    key: str
    database: str
    database_url: str
    documents_dir: str
    database_bytes: int = 0
    dump_bytes: int = 0
    documents: int = 0
    documents_bytes: int = 0
    compressible_bytes: int = 0
    dump_gzip_bytes: int = 0  # the plain dump through zlib level 6, as `gzip -6` writes it
    kind: str = "synthetic"

    @property
    def stamp(self) -> str:
        return KINDS[self.kind].stamp(self.key)

    @property
    def gzip_ratio(self) -> float | None:
        return self.dump_bytes / self.dump_gzip_bytes if self.dump_gzip_bytes else None


def scale_key(scale: float) -> str:
    return f"{scale:g}".replace(".", "_")


def _write_csv(path: Path, rng: random.Random, rows: int) -> None:
    lines = ["date,odometer_km,litres,price_total,station,notes\n"]
    odo = rng.randint(1_000, 90_000)
    for _ in range(rows):
        odo += rng.randint(150, 900)
        litres = rng.uniform(18, 70)
        lines.append(f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},{odo},"
                     f"{litres:.2f},{litres * rng.uniform(1.45, 2.1):.2f},"
                     f"Station {rng.randint(1, 400)},{rng.choice(_WORDS)}\n")
    path.write_text("".join(lines))


def _write_text(path: Path, rng: random.Random, size: int) -> None:
    parts, n = [], 0
    while n < size:
        line = " ".join(rng.choices(_WORDS, k=rng.randint(6, 18))).capitalize() + ".\n"
        parts.append(line)
        n += len(line)
    path.write_text("".join(parts))


def _write_json(path: Path, rng: random.Random, records: int) -> None:
    items = [{"id": rng.getrandbits(48), "date": f"2023-{rng.randint(1, 12):02d}-"
              f"{rng.randint(1, 28):02d}", "category": rng.choice(_WORDS),
              "cost": round(rng.uniform(10, 900), 2),
              "description": " ".join(rng.choices(_WORDS, k=rng.randint(4, 12)))}
             for _ in range(records)]
    path.write_text(json.dumps(items, indent=1))


def _write_binary(path: Path, rng: random.Random, magic: bytes, size: int) -> None:
    path.write_bytes(magic + rng.randbytes(size - len(magic)))


def user_files(user: int, folder: Path) -> list[tuple[Path, bool]]:
    """Write one user's documents; return (path, compressible) for each."""
    rng = random.Random(f"bench-user-{user}")
    made: list[tuple[Path, bool]] = []

    def target(rel: str) -> Path:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    for k in range(rng.randint(1, 3)):
        path = target(f"photos/IMG_{user:05d}_{k}.jpg")
        _write_binary(path, rng, b"\xff\xd8\xff\xe0", rng.randint(150_000, 1_000_000))
        made.append((path, False))
    for k in range(rng.randint(1, 3)):
        path = target(f"receipts/receipt-{k}.pdf")
        _write_binary(path, rng, b"%PDF-1.7\n", rng.randint(30_000, 400_000))
        made.append((path, False))
    if rng.random() < 0.3:
        path = target("contracts/lease.docx")
        _write_binary(path, rng, b"PK\x03\x04", rng.randint(20_000, 200_000))
        made.append((path, False))
    for k in range(rng.randint(1, 3)):
        path = target(f"exports/fuel-{2021 + k}.csv")
        _write_csv(path, rng, rng.randint(4_000, 20_000))
        made.append((path, True))
    for k in range(rng.randint(1, 6)):
        path = target(f"notes/note-{k}.txt")
        _write_text(path, rng, rng.randint(2_000, 60_000))
        made.append((path, True))
    for k in range(rng.randint(0, 2)):
        path = target(f"service/history-{k}.json")
        _write_json(path, rng, rng.randint(50, 1_500))
        made.append((path, True))
    if rng.random() < 0.1:
        path = target("notes/empty.txt")
        path.write_bytes(b"")
        made.append((path, True))
    for path, _ in made:
        os.utime(path, (MTIME, MTIME))
    return made


def build_documents(root: Path, users: int, write_user=user_files
                    ) -> tuple[int, int, int, list[tuple]]:
    """(files, bytes, compressible bytes, rows for the documents table)."""
    files = total = compressible = 0
    rows = []
    for user in range(1, users + 1):
        for path, text in write_user(user, root / str(user)):
            size = path.stat().st_size
            files += 1
            total += size
            compressible += size if text else 0
            rel = path.relative_to(root).as_posix()
            rows.append((user, path.name, rel, size))
    return files, total, compressible, rows


def _psql_file(url: str, path: Path, **variables: str) -> None:
    conninfo, env = client_env(url)
    args = [a for k, v in variables.items() for a in ("-v", f"{k}={v}")]
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *args, "-d", conninfo,
                    "-f", str(path)], check=True, env=env, stdout=subprocess.DEVNULL)


def _dump_sizes(url: str) -> tuple[int, int]:
    """(plain dump bytes, the same through zlib level 6): the latter says how compressible the
    dataset is, as `gzip -6` of the naive pipeline finds it (real SQL text: about 3.5-5 x)."""
    conninfo, env = client_env(url)
    gzip6 = zlib.compressobj(6, zlib.DEFLATED, 31)
    n = packed = 0
    with subprocess.Popen(["pg_dump", "--format=plain", "--exclude-schema=backup",
                           f"--dbname={conninfo}"], stdout=subprocess.PIPE, env=env) as proc:
        while chunk := proc.stdout.read(1 << 20):
            n += len(chunk)
            packed += len(gzip6.compress(chunk))
    if proc.returncode != 0:
        raise RuntimeError("pg_dump of the benchmark database failed")
    return n, packed + len(gzip6.flush())


def _stamp_of(server_url: str, database: str) -> str | None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                           " WHERE datname = %s", (database,)).fetchone()
    return row[0] if row else None


def drop_database(server_url: str, database: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _fill_synthetic(database_url: str, scale: float) -> None:
    _psql_file(database_url, FILL, scale=str(max(1, round(SCHEMA_SCALE_PER_UNIT * scale))))


def _fill_realistic(database_url: str, scale: float) -> None:
    _psql_file(database_url, realistic.FILL, scale=f"{scale:g}", **vocabulary.psql_variables())


@dataclass(frozen=True)
class Kind:
    """How a dataset of one kind is named and made."""

    name: str
    prefix: str  # of the database (bench_<prefix>s<scale>) and the folder (<prefix>s<scale>)
    version: int
    user_files: Callable[[int, Path], list[tuple[Path, bool]]]
    fill: Callable[[str, float], None]  # (database URL, scale): rows into the loaded schema
    documents_sql: str | None = None  # SQL run once the documents table has its rows

    def stamp(self, key: str) -> str:
        kind = "" if self.name == "synthetic" else f"{self.name} "  # synthetic: as before
        return f"backup_pipeline benchmark dataset {kind}v{self.version} scale={key}"


KINDS = {
    "realistic": Kind("realistic", "real_", realistic.VERSION, realistic.user_files,
                      _fill_realistic, realistic.DOCUMENTS_SQL),
    "synthetic": Kind("synthetic", "", VERSION, user_files, _fill_synthetic),
}


def ensure(server_url: str, cache: Path, scale: float, name: str | None = None,
           log=print, kind: str = "realistic") -> Dataset:
    """The dataset of `kind` at `scale`, built unless a complete one with its stamp exists."""
    how = KINDS[kind]
    key = scale_key(scale)
    database = name or f"bench_{how.prefix}s{key}"
    folder = cache / f"{how.prefix}s{key}"
    ds = Dataset(scale, key, database, with_database(server_url, database),
                 str(folder / "documents"), kind=kind)
    info_path = folder / "dataset.json"
    if info_path.exists() and _stamp_of(server_url, database) == ds.stamp:
        saved = json.loads(info_path.read_text())
        if saved.get("stamp") == ds.stamp and saved.get("database") == database:
            for field in ("database_bytes", "dump_bytes", "documents", "documents_bytes",
                          "compressible_bytes", "dump_gzip_bytes"):
                setattr(ds, field, saved.get(field, 0))
            log(f"dataset: reusing {database} and {ds.documents_dir}")
            return ds
    log(f"dataset: building {kind} scale {scale:g} ({database}, {folder}); this takes a while "
        "once")
    info_path.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    drop_database(server_url, database)
    docs = Path(ds.documents_dir)
    docs.mkdir(parents=True)
    users = max(1, round(DOCUMENT_USERS_PER_UNIT * scale))
    ds.documents, ds.documents_bytes, ds.compressible_bytes, rows = build_documents(
        docs, users, how.user_files)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    _psql_file(ds.database_url, SCHEMA, scale="0")  # the tables only
    how.fill(ds.database_url, scale)
    with psycopg.connect(ds.database_url) as conn, conn.cursor() as cur, cur.copy(
            "COPY documents (user_id, file_name, storage_key, size_bytes) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    if how.documents_sql:
        with psycopg.connect(ds.database_url) as conn:
            conn.execute(how.documents_sql)
    migrate(ds.database_url)
    with psycopg.connect(ds.database_url, autocommit=True) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        ds.database_bytes = conn.execute("SELECT pg_database_size(current_database())"
                                         ).fetchone()[0]
    ds.dump_bytes, ds.dump_gzip_bytes = _dump_sizes(ds.database_url)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'COMMENT ON DATABASE "{database}" IS {_literal(ds.stamp)}')
    info_path.write_text(json.dumps({**asdict(ds), "stamp": ds.stamp}, indent=1))
    log(f"dataset: plain dump {ds.dump_bytes / 1e6:,.1f} MB, gzip -6 ratio "
        f"{ds.gzip_ratio:.2f} x; {ds.documents:,} documents {ds.documents_bytes / 1e6:,.1f} MB")
    return ds


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
