#!/usr/bin/env python3
"""Benchmark of backup and restore against their floors and the naive pipeline (issues 8, 16).

    .venv/bin/python benchmarks/run.py --scale 1 --repeat 3

Builds (once, then cached) the dataset at the scale, then runs every case several times,
interleaved, and prints medians, ratios against the baselines measured in the same run, the
targets, and markdown tables for the README. Our backup is timed as a user runs it: the whole
`backup-pipeline backup --json` process, once per compression level (--levels) and thread count
(--threads). Progress goes to stderr, the report to stdout.

Cases are built in benchmarks/cases.py, targets and tables in benchmarks/report.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from backup_pipeline.catalog.migrate import migrate  # noqa: E402
from backup_pipeline.postgres import with_database  # noqa: E402
from benchmarks import cases, dataset, measure, report  # noqa: E402
from benchmarks.cases import Case, Context, Result, log  # noqa: E402


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


def run_case(ctx: Context, case: Case) -> tuple[measure.Sample, dict]:
    argv, env = case.command(ctx)
    sample = measure.run(argv, env=env)
    if sample.returncode != 0:
        raise SystemExit(f"{case.key} failed (exit {sample.returncode}): "
                         f"{sample.stderr.strip()[-2000:]}")
    extras = case.finish(ctx, sample) if case.finish else {}
    return sample, extras


def run(ctx: Context, every: list[Case], chosen: list[Case], repeat: int,
        repeat_naive: int) -> dict[str, Result]:
    results = {case.key: Result(case) for case in chosen}
    log("warm-up: page cache and the Dagster instance")
    if any(case.needs_data for case in chosen):
        run_case(ctx, next(c for c in every if c.key == "floor"))
    if any(case.group in ("backup", "empty") for case in chosen):
        run_case(ctx, next(c for c in every if c.key == "empty"))
    for rep in range(repeat):
        for case in chosen:
            if case.key == "naive" and rep >= repeat_naive:
                continue
            sample, extras = run_case(ctx, case)
            results[case.key].samples.append(sample)
            results[case.key].extras.append(extras)
            inside = f", inside {extras['inside']:.2f} s" if "inside" in extras else ""
            log(f"  [{rep + 1}/{repeat}] {case.key:20s} {sample.wall:7.2f} s  (peak "
                f"{sample.peak_mb:.0f} MB{inside}, load {measure.load()})")
    return results


def level_list(text: str) -> list[str]:
    levels = [part.strip() for part in text.split(",") if part.strip()]
    for level in levels:
        if level not in cases.NAMED_LEVELS and not (level.isdigit() and 1 <= int(level) <= 12):
            raise argparse.ArgumentTypeError(
                f"{level!r} is not a compression level: {', '.join(cases.NAMED_LEVELS)} or "
                "a libdeflate level 1..12")
    return levels


def one_level(text: str) -> str:
    levels = level_list(text)
    if len(levels) != 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not one compression level")
    return levels[0]


def thread_list(text: str) -> list[int]:
    try:
        threads = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of thread counts (1,2)")
    return threads


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="dataset size; 1 is ~270 MB of dump and ~260 MB of documents")
    parser.add_argument("--dataset", choices=sorted(dataset.KINDS), default="realistic",
                        help="realistic: records and text like an application's (default); "
                        "synthetic: the dataset of the measurements before issue 16")
    parser.add_argument("--levels", type=level_list, default="fast,balanced,small",
                        help="compression levels to measure (BACKUP_COMPRESSION_LEVEL): fast, "
                        "balanced, small or a libdeflate level 1..12 (default fast,balanced,"
                        "small)")
    parser.add_argument("--threads", type=thread_list, default="1,2",
                        help="compression thread counts to measure (BACKUP_COMPRESSION_THREADS,"
                        " default 1,2)")
    parser.add_argument("--default-level", type=one_level, default="balanced",
                        help="the level the targets hold to (default balanced); the empty "
                        "backups use it, the drill and the restore floor its archive")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-naive", type=int, default=None,
                        help="repetitions of the slow naive pipeline (default: --repeat)")
    parser.add_argument("--only", default=None,
                        help="comma-separated cases to run: floor, naive, backup (every level "
                        "and thread count), empty, empty_direct, restore_floor, "
                        "restore_floor_documents, restore (every level), drill, or one case's "
                        "key (backup_fast_t2, restore_small, ...)")
    parser.add_argument("--prepare", action="store_true",
                        help="only build (or find) the dataset, print its sizes and stop")
    parser.add_argument("--cache", type=Path, default=REPO / ".local" / "bench",
                        help="where datasets are kept between runs")
    parser.add_argument("--server-url", default=None,
                        help="PostgreSQL server (database postgres); default: the local one")
    parser.add_argument("--database-name", default=None,
                        help="name of the dataset's database (default bench_real_s<scale> or "
                        "bench_s<scale>); the empty one is NAME_empty (default bench_empty)")
    parser.add_argument("--dagster-storage", choices=["sqlite", "postgres"], default="sqlite",
                        help="storage of the temporary Dagster instance (default: SQLite files, "
                        "as a local DAGSTER_HOME has)")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    return parser.parse_args()


def console_script() -> str:
    """`backup-pipeline` of the environment running this (the project's .venv)."""
    beside = Path(sys.executable).parent / "backup-pipeline"
    found = str(beside) if beside.exists() else shutil.which("backup-pipeline")
    if not found:
        raise SystemExit("backup-pipeline is not installed: run `make install`")
    return found


def main() -> int:
    args = parse_args()
    server_url = args.server_url or _local_server()
    cache = args.cache.absolute()
    data = dataset.ensure(server_url, cache, args.scale, args.database_name, log=log,
                          kind=args.dataset)
    if args.prepare:
        print(json.dumps({"database": data.database, "documents_dir": data.documents_dir,
                          "dump_bytes": data.dump_bytes, "gzip6_ratio": data.gzip_ratio,
                          "documents": data.documents, "documents_bytes": data.documents_bytes,
                          "compressible_bytes": data.compressible_bytes}, indent=1))
        return 0
    empty = ensure_empty(server_url, cache, f"{args.database_name or 'bench'}_empty")
    work = cache / "work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "dagster").mkdir(parents=True)
    (work / "dagster" / "dagster.yaml").write_text(dagster_yaml(args.dagster_storage, server_url))
    ctx = Context(server_url, work, data, empty, work / "dagster", console_script(),
                  args.levels, args.threads, args.default_level)
    every = cases.build(ctx)
    wanted = set(args.only.split(",")) if args.only else None
    chosen = [c for c in every if wanted is None or c.key in wanted or c.group in wanted]
    with psycopg.connect(server_url) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
    loads = [measure.load()]
    try:
        results = run(ctx, every, chosen, args.repeat, args.repeat_naive or args.repeat)
    finally:
        loads.append(measure.load())
        for ds in (data, empty):
            history_cleanup(ds)
        cases.drop_throwaways(ctx)
        shutil.rmtree(work, ignore_errors=True)
    print(report.report(ctx, results, args, measure.machine(), loads, pg_version))
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
    """Rows of failed benchmark backups (completed ones are removed as they finish): the
    worker's (trigger benchmark) and the command line's (trigger cli)."""
    with psycopg.connect(ds.database_url) as conn:
        conn.execute("DELETE FROM backup.backup_history WHERE trigger IN ('benchmark', 'cli')")


def _local_server() -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("local_services",
                                                  REPO / "scripts" / "local_services.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.find_or_start_postgres(REPO / ".local" / "services")


if __name__ == "__main__":
    sys.exit(main())
