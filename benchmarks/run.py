#!/usr/bin/env python3
"""Benchmark of backup against the hardware floor and the naive pipeline (issue 8).

    .venv/bin/python benchmarks/run.py --scale 1 --repeat 3

Builds (once, then cached) the reference dataset at the scale, then runs every case several
times, interleaved, and prints medians, ratios against the baselines measured in the same run,
the targets, and a markdown table for the README. Progress goes to stderr, the report to stdout.

Cases are entries of CASES and targets entries of TARGETS: measuring something new (restore)
means adding its cases and targets there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from backup_pipeline.archive import manifest as mf  # noqa: E402
from backup_pipeline.catalog.migrate import migrate  # noqa: E402
from backup_pipeline.postgres import client_env, with_database  # noqa: E402
from benchmarks import dataset, measure  # noqa: E402
from benchmarks.measure import Sample  # noqa: E402

WORKER = Path(__file__).resolve().parent / "worker.py"
PG_DUMP = "pg_dump --format=plain --no-password --exclude-schema=backup --dbname=\"$CONNINFO\""
# throwaway databases of the restore cases: <dataset database>_<suffix>
RESTORE_SOURCE, RESTORE_LIVE, RESTORE_FLOOR = "rsrc", "rlive", "rfloor"


@dataclass
class RestoreSource:
    """What the restore cases restore: an archive of the dataset made once per run, outside
    any timing, by a backup of a copy of the dataset's database (`database`, which then holds
    the archive's catalog row and is the template of every throwaway live database), and the
    archive's dump member, extracted for the floor."""

    database: str
    backup_id: str
    archive_dir: Path
    dump_path: Path


@dataclass
class Context:
    """What the cases of one benchmark run work on."""

    server_url: str
    work: Path
    data: dataset.Dataset
    empty: dataset.Dataset
    dagster_home: Path
    restore_source: RestoreSource | None = None

    def env(self, ds: dataset.Dataset, backup_dir: Path, **extra: str) -> dict[str, str]:
        conninfo, env = client_env(ds.database_url)
        return {**env, "CONNINFO": conninfo, "DATABASE_URL": ds.database_url,
                "DOCUMENTS_DIR": ds.documents_dir, "BACKUP_DIR": str(backup_dir),
                "DAGSTER_HOME": str(self.dagster_home), "WORK": str(backup_dir), **extra}


@dataclass
class Case:
    key: str
    label: str
    command: Callable[[Context], tuple[list[str], dict[str, str]]]
    finish: Callable[[Context, Sample], dict] | None = None
    needs_data: bool = True


@dataclass
class Result:
    case: Case
    samples: list[Sample] = field(default_factory=list)
    extras: list[dict] = field(default_factory=list)

    def values(self, name: str) -> list[float]:
        if name in ("wall", "cpu", "peak_mb", "max_process_mb"):
            return [getattr(s, name) for s in self.samples]
        return [e[name] for e in self.extras if name in e]

    def median(self, name: str) -> float | None:
        values = self.values(name)
        return statistics.median(values) if values else None

    @property
    def seconds(self) -> float:
        """The operation's own time when the worker reports it, else the process's."""
        return self.median("seconds") or self.median("wall")


# --- the cases -----------------------------------------------------------------------------

def _bash(script: str) -> list[str]:
    return ["bash", "-c", "set -euo pipefail\n" + script]


def floor_command(ctx: Context) -> tuple[list[str], dict[str, str]]:
    return _bash(f'{PG_DUMP} > /dev/null\n'
                 'find "$DOCUMENTS_DIR" -type f -exec cat {} + > /dev/null'), \
        ctx.env(ctx.data, ctx.work / "floor")


def naive_command(ctx: Context) -> tuple[list[str], dict[str, str]]:
    out = ctx.work / "naive"
    shutil.rmtree(out, ignore_errors=True)
    (out / "database").mkdir(parents=True)
    docs = Path(ctx.data.documents_dir)
    return _bash(f'{PG_DUMP} | gzip -6 > "$WORK/database/motovaultpro.sql.gz"\n'
                 f'tar czf "$WORK/naive.tar.gz" -C "$WORK" database -C "{docs.parent}" '
                 f'"{docs.name}"'), ctx.env(ctx.data, out)


def naive_finish(ctx: Context, sample: Sample) -> dict:
    archive = ctx.work / "naive" / "naive.tar.gz"
    extras = {"archive_bytes": archive.stat().st_size}
    shutil.rmtree(ctx.work / "naive", ignore_errors=True)
    return extras


def worker(operation: str, empty: bool = False) -> Callable:
    def command(ctx: Context) -> tuple[list[str], dict[str, str]]:
        ds = ctx.empty if empty else ctx.data
        return [sys.executable, str(WORKER), operation], \
            ctx.env(ds, ctx.work / f"backups-{ds.key}")
    return command


def backup_finish(ctx: Context, sample: Sample) -> dict:
    """Keep the worker's numbers; remove the archive and its row (a row left without its file
    would clash with the next archive made in the same second)."""
    extras = json.loads(sample.stdout.strip().splitlines()[-1])
    Path(extras.pop("archive_path")).unlink()
    backup_id = extras.pop("backup_id")
    for ds in (ctx.data, ctx.empty):
        with psycopg.connect(ds.database_url) as conn:
            conn.execute("DELETE FROM backup.backup_history WHERE id = %s", (backup_id,))
    return extras


# --- restore --------------------------------------------------------------------------------
# Every restore rep works on throwaway copies (database and documents) made before its clock
# starts: the reference dataset is only ever read.

def _admin(ctx: Context) -> psycopg.Connection:
    return psycopg.connect(ctx.server_url, autocommit=True)


def _throwaway(ctx: Context, suffix: str) -> str:
    return f"{ctx.data.database}_{suffix}"


def _recreate(ctx: Context, name: str, template: str) -> None:
    """DROP and CREATE DATABASE name from template (FILE_COPY: copied as files, checkpointed,
    so the copy leaves no dirty buffers behind for the measured command to write out)."""
    with _admin(ctx) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        strategy = "" if template == "template0" else " STRATEGY FILE_COPY"
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')


def drop_throwaways(ctx: Context, suffix: str | None = None) -> None:
    """Drop the restore cases' databases (of one suffix, or all), including what a failed
    restore left beside them (`<name>_restore_<id>`, `<name>_old_<id>`)."""
    suffixes = [suffix] if suffix else [RESTORE_SOURCE, RESTORE_LIVE, RESTORE_FLOOR]
    with _admin(ctx) as conn:
        for sfx in suffixes:
            name = _throwaway(ctx, sfx)
            for (db,) in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname = %s OR left(datname, %s) = %s",
                    (name, len(name) + 1, name + "_")).fetchall():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def restore_source(ctx: Context) -> RestoreSource:
    """Made on first use: the archive every restore rep restores (see RestoreSource)."""
    if ctx.restore_source is not None:
        return ctx.restore_source
    log("restore: making the archive to restore (a backup of a copy of the dataset)")
    name = _throwaway(ctx, RESTORE_SOURCE)
    _recreate(ctx, name, ctx.data.database)
    source = dataclasses.replace(ctx.data, database=name,
                                 database_url=with_database(ctx.server_url, name))
    archive_dir = ctx.work / "restore-archive"
    sample = measure.run([sys.executable, str(WORKER), "backup-service"],
                         env=ctx.env(source, archive_dir))
    if sample.returncode != 0:
        raise SystemExit(f"the backup to restore failed: {sample.stderr.strip()[-2000:]}")
    made = json.loads(sample.stdout.strip().splitlines()[-1])
    dump_path = ctx.work / "restore-floor" / "motovaultpro.sql.gz"
    dump_path.parent.mkdir(parents=True)
    with tarfile.open(made["archive_path"], "r:gz") as tar, open(dump_path, "wb") as out:
        shutil.copyfileobj(tar.extractfile(mf.DUMP_MEMBER), out, 1 << 20)
    ctx.restore_source = RestoreSource(name, made["backup_id"], archive_dir, dump_path)
    return ctx.restore_source


def restore_floor_command(ctx: Context) -> tuple[list[str], dict[str, str]]:
    source = restore_source(ctx)
    name = _throwaway(ctx, RESTORE_FLOOR)
    _recreate(ctx, name, "template0")
    os.sync()
    target = dataclasses.replace(ctx.data, database_url=with_database(ctx.server_url, name))
    return _bash('gunzip -c "$DUMP" | psql -q -v ON_ERROR_STOP=1 --no-password '
                 '-d "$CONNINFO" > /dev/null'), \
        ctx.env(target, ctx.work / "restore-floor", DUMP=str(source.dump_path))


def restore_command(ctx: Context) -> tuple[list[str], dict[str, str]]:
    """A live database that has the data (a copy of the source) and a copy of the documents,
    then the restore of the archive onto them."""
    source = restore_source(ctx)
    name = _throwaway(ctx, RESTORE_LIVE)
    drop_throwaways(ctx, RESTORE_LIVE)
    _recreate(ctx, name, source.database)
    live_root = ctx.work / "restore-live"
    shutil.rmtree(live_root, ignore_errors=True)
    live_root.mkdir()
    shutil.copytree(ctx.data.documents_dir, live_root / "documents", symlinks=True)
    os.sync()
    live = dataclasses.replace(ctx.data, database_url=with_database(ctx.server_url, name),
                               documents_dir=str(live_root / "documents"))
    return [sys.executable, str(WORKER), "restore-service"], \
        ctx.env(live, source.archive_dir, RESTORE_BACKUP_ID=source.backup_id)


def restore_floor_finish(ctx: Context, sample: Sample) -> dict:
    drop_throwaways(ctx, RESTORE_FLOOR)
    return {}


def restore_finish(ctx: Context, sample: Sample) -> dict:
    extras = json.loads(sample.stdout.strip().splitlines()[-1])
    extras.pop("restore_id", None)
    drop_throwaways(ctx, RESTORE_LIVE)
    shutil.rmtree(ctx.work / "restore-live", ignore_errors=True)
    return extras


def drill_command(ctx: Context) -> tuple[list[str], dict[str, str]]:
    """The drill of the archive, beside the source database (which it only reads)."""
    source = restore_source(ctx)
    os.sync()
    live = dataclasses.replace(ctx.data, database=source.database,
                               database_url=with_database(ctx.server_url, source.database))
    return [sys.executable, str(WORKER), "drill-service"], \
        ctx.env(live, source.archive_dir, RESTORE_BACKUP_ID=source.backup_id)


def drill_finish(ctx: Context, sample: Sample) -> dict:
    return json.loads(sample.stdout.strip().splitlines()[-1])


CASES = [
    Case("floor", "floor: `pg_dump > /dev/null` + read every document", floor_command),
    Case("naive", "naive: `pg_dump \\| gzip -6`, then `tar czf` of it and the documents",
         naive_command, naive_finish),
    Case("backup", "backup_job through Dagster (`execute_in_process`)",
         worker("backup-dagster"), backup_finish),
    Case("backup_direct", "the same backup without Dagster (`service.run_backup`)",
         worker("backup-service"), backup_finish),
    Case("empty", "empty database, no documents: backup_job through Dagster",
         worker("backup-dagster", empty=True), backup_finish, needs_data=False),
    Case("empty_direct", "empty database, no documents: without Dagster",
         worker("backup-service", empty=True), backup_finish, needs_data=False),
    Case("restore_floor", "restore floor: `gunzip -c dump.sql.gz \\| psql` into a new database",
         restore_floor_command, restore_floor_finish),
    Case("restore", "our restore without its safety backup (claim, verify, load_database, "
         "swap, finish)", restore_command, restore_finish),
    Case("drill", "restore drill: scratch database and folder, counts and sha256 compared, "
         "dropped (`drills.run_drill`)", drill_command, drill_finish),
]


@dataclass
class Target:
    label: str
    measured: Callable[[dict[str, Result]], float | None]
    limit: float
    unit: str
    at_most: bool = True

    def check(self, results: dict[str, Result]) -> tuple[float | None, bool | None]:
        try:
            value = self.measured(results)
        except (KeyError, TypeError, ZeroDivisionError):
            return None, None
        if value is None:
            return None, None
        return value, value <= self.limit if self.at_most else value >= self.limit


def _ratio(a: str, b: str, what: str = "seconds") -> Callable[[dict[str, Result]], float]:
    def measured(results: dict[str, Result]) -> float:
        get = (lambda r: r.seconds) if what == "seconds" else (lambda r: r.median(what))
        return get(results[a]) / get(results[b])
    return measured


TARGETS = [
    Target("backup time / floor, without Dagster", _ratio("backup_direct", "floor"), 1.5, "x"),
    Target("backup time / floor, through Dagster", _ratio("backup", "floor"), 1.5, "x"),
    Target("naive time / backup time, without Dagster", _ratio("naive", "backup_direct"), 6.0,
           "x", at_most=False),
    Target("naive time / backup time, through Dagster", _ratio("naive", "backup"), 6.0, "x",
           at_most=False),
    Target("backup archive / naive archive", _ratio("backup", "naive", "archive_bytes"), 1.03,
           "x"),
    Target("backup peak memory, through Dagster", lambda r: r["backup"].median("peak_mb"), 200,
           "MB"),
    Target("Dagster overhead, empty database",
           lambda r: r["empty"].seconds - r["empty_direct"].seconds, 2.0, "s"),
    Target("Dagster overhead, empty database, whole process (with imports)",
           lambda r: r["empty"].median("wall") - r["empty_direct"].median("wall"), 2.0, "s"),
    Target("restore time / restore floor", _ratio("restore", "restore_floor"), 1.3, "x"),
    Target("restore peak memory", lambda r: r["restore"].median("peak_mb"), 200, "MB"),
    Target("drill time / restore floor", _ratio("drill", "restore_floor"), 1.3, "x"),
    Target("drill RTO (loaded and checked, before the drop) / restore floor",
           lambda r: r["drill"].median("rto_seconds") / r["restore_floor"].seconds, 1.3, "x"),
]


# --- running ------------------------------------------------------------------------------

def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_empty(server_url: str, cache: Path, name: str) -> dataset.Dataset:
    """An empty application database (catalog only) and an empty documents folder."""
    ds = dataset.Dataset(0, "empty", name, with_database(server_url, name),
                         str(cache / "empty" / "documents"))
    Path(ds.documents_dir).mkdir(parents=True, exist_ok=True)
    with psycopg.connect(server_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    migrate(ds.database_url)
    return ds


def run_case(ctx: Context, case: Case) -> tuple[Sample, dict]:
    argv, env = case.command(ctx)
    sample = measure.run(argv, env=env)
    if sample.returncode != 0:
        raise SystemExit(f"{case.key} failed (exit {sample.returncode}): "
                         f"{sample.stderr.strip()[-2000:]}")
    extras = case.finish(ctx, sample) if case.finish else {}
    return sample, extras


def run(ctx: Context, cases: list[Case], repeat: int, repeat_naive: int) -> dict[str, Result]:
    results = {case.key: Result(case) for case in cases}
    log("warm-up: page cache and the Dagster instance")
    keys = {case.key for case in cases}
    if any(case.needs_data for case in cases):
        run_case(ctx, next(c for c in CASES if c.key == "floor"))
    if keys & {"backup", "empty"}:
        run_case(ctx, next(c for c in CASES if c.key == "empty"))
    for rep in range(repeat):
        for case in cases:
            if case.key == "naive" and rep >= repeat_naive:
                continue
            sample, extras = run_case(ctx, case)
            results[case.key].samples.append(sample)
            results[case.key].extras.append(extras)
            took = extras.get("seconds", sample.wall)
            log(f"  [{rep + 1}/{repeat}] {case.key:14s} {took:7.2f} s  "
                f"(process {sample.wall:.2f} s, peak {sample.peak_mb:.0f} MB, load "
                f"{measure.load()})")
    return results


# --- the report ---------------------------------------------------------------------------

def _mb(n: float | None) -> str:
    return "–" if n is None else f"{n / 1e6:,.1f}"


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def report(ctx: Context, results: dict[str, Result], args, machine: dict, loads: list[str],
           pg_version: str) -> str:
    data = ctx.data
    lines = [
        f"### Scale {args.scale:g} ({args.repeat} repetitions, medians)",
        "",
        f"Machine: {machine['nproc']} × {machine['cpu']}, {machine['memory']} RAM, "
        f"Linux {machine['kernel']}, PostgreSQL {pg_version}, Python {machine['python']}; "
        f"load average (1/5/15 min) before {loads[0]}, after {loads[1]}.",
        "",
        f"Dataset: database {_mb(data.database_bytes)} MB (plain dump {_mb(data.dump_bytes)} MB), "
        f"{data.documents:,} documents {_mb(data.documents_bytes)} MB "
        f"({100 * data.compressible_bytes / max(1, data.documents_bytes):.0f}% compressible). "
        f"Dagster instance storage: {args.dagster_storage}.",
        "",
        "| measurement | time (s) | range (s) | process (s) | CPU (s) | peak memory (MB) "
        "| archive (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.values():
        times = r.values("seconds") or r.values("wall")
        lines.append(
            f"| {r.case.label} | {_num(r.seconds)} | {_num(min(times))}–{_num(max(times))} | "
            f"{_num(r.median('wall'))} | {_num(r.median('cpu'))} | "
            f"{_num(r.median('peak_mb'), 0)} | "
            f"{_mb(r.median('archive_bytes'))} |")
    lines += ["", "| target | measured | limit | |", "|---|---:|---:|---|"]
    for target in TARGETS:
        value, ok = target.check(results)
        if value is None:
            continue
        sign = "≤" if target.at_most else "≥"
        lines.append(f"| {target.label} | {value:.2f} {target.unit} | {sign} {target.limit:g} "
                     f"{target.unit} | {'met' if ok else '**missed**'} |")
    lines += ["", "Time is the operation itself (for our backup: the job or function call, "
              "without interpreter start and imports); process is the whole command; CPU is "
              "the user and system time of the command's processes (not the database server's). "
              "Peak memory is the largest sum of the resident memory of the command's whole "
              "process tree (pg_dump included)."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="dataset size; 1 is ~260 MB of dump and ~260 MB of documents")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-naive", type=int, default=None,
                        help="repetitions of the slow naive pipeline (default: --repeat)")
    parser.add_argument("--only", default=None,
                        help="comma-separated case keys to run: " + ",".join(c.key for c in CASES))
    parser.add_argument("--cache", type=Path, default=REPO / ".local" / "bench",
                        help="where datasets are kept between runs")
    parser.add_argument("--server-url", default=None,
                        help="PostgreSQL server (database postgres); default: the local one")
    parser.add_argument("--database-name", default=None,
                        help="name of the dataset's database (default bench_s<scale>); the "
                        "empty one is NAME_empty (default bench_empty)")
    parser.add_argument("--dagster-storage", choices=["sqlite", "postgres"], default="sqlite",
                        help="storage of the temporary Dagster instance (default: SQLite files, "
                        "as a local DAGSTER_HOME has)")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = parser.parse_args()

    server_url = args.server_url or _local_server()
    cache = args.cache.absolute()
    data = dataset.ensure(server_url, cache, args.scale, args.database_name, log=log)
    empty = ensure_empty(server_url, cache, f"{args.database_name or 'bench'}_empty")
    work = cache / "work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "dagster").mkdir(parents=True)
    (work / "dagster" / "dagster.yaml").write_text(dagster_yaml(args.dagster_storage, server_url))
    ctx = Context(server_url, work, data, empty, work / "dagster")
    wanted = set(args.only.split(",")) if args.only else None
    cases = [c for c in CASES if wanted is None or c.key in wanted]
    with psycopg.connect(server_url) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
    loads = [measure.load()]
    try:
        results = run(ctx, cases, args.repeat, args.repeat_naive or args.repeat)
    finally:
        loads.append(measure.load())
        for ds in (data, empty):
            history_cleanup(ds)
        drop_throwaways(ctx)
        shutil.rmtree(work, ignore_errors=True)
    text = report(ctx, results, args, measure.machine(), loads, pg_version)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({
            key: {"samples": [s.__dict__ | {"stdout": "", "stderr": ""} for s in r.samples],
                  "extras": r.extras} for key, r in results.items()}, indent=1))
    return 0


def dagster_yaml(storage: str, server_url: str) -> str:
    """The temporary instance's config: the repository's dagster.yaml, as an operator's
    `make backup` and `make dev` get it (SQLite files), or that with PostgreSQL storage (as a
    deployment has), in a database of its own that is emptied first."""
    config = (REPO / "dagster.yaml").read_text()
    if storage == "sqlite":
        return config
    name = "bench_dagster"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    params = dict(part.split("=", 1) for part in url.split())
    return config + (
        "storage:\n  postgres:\n    postgres_db:\n"
        f"      hostname: {params.get('host', '127.0.0.1')}\n"
        f"      port: {params.get('port', '5432')}\n"
        f"      username: {params.get('user', 'postgres')}\n"
        f"      password: \"{params.get('password', '')}\"\n"
        f"      db_name: {name}\n"
        # SQLAlchemy 2.1 defaults to psycopg 3, whose NOTIFY dagster-postgres cannot use
        "      scheme: postgresql+psycopg2\n")


def history_cleanup(ds: dataset.Dataset) -> None:
    """Rows of failed benchmark backups (completed ones are removed as they finish)."""
    with psycopg.connect(ds.database_url) as conn:
        conn.execute("DELETE FROM backup.backup_history WHERE trigger = 'benchmark'")


def _local_server() -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("local_services",
                                                  REPO / "scripts" / "local_services.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.find_or_start_postgres(REPO / ".local" / "services")


if __name__ == "__main__":
    sys.exit(main())
