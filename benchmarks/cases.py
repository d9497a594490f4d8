"""The benchmark's cases: what each runs (a whole process, as a user runs it) and what it
leaves to clean up.

A case's command is built before its clock starts (throwaway databases and folders included);
its finish runs after the clock stops, reads what the command printed and removes what it made.
"""

from __future__ import annotations

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

import psycopg

from backup_pipeline.archive import manifest as mf
from backup_pipeline.postgres import client_env, with_database
from benchmarks import dataset, measure
from benchmarks.measure import Sample

WORKER = Path(__file__).resolve().parent / "worker.py"
PG_DUMP = "pg_dump --format=plain --no-password --exclude-schema=backup --dbname=\"$CONNINFO\""
# throwaway databases of the restore cases: <dataset database>_<suffix>
RESTORE_SOURCE, RESTORE_LIVE, RESTORE_FLOOR = "rsrc", "rlive", "rfloor"
NAMED_LEVELS = ("fast", "balanced", "small")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class RestoreSource:
    """What the restore cases restore: one archive of the dataset per compression level, made
    once per run, outside any timing, by backups of a copy of the dataset's database
    (`database`, which then holds the archives' catalog rows and is the template of every
    throwaway live database), and the dump member of the drill's archive, extracted for the
    floor."""

    database: str
    archive_dir: Path
    backup_ids: dict[str, str]  # compression level: the backup made at it
    dump_path: Path


@dataclass
class Context:
    """What the cases of one benchmark run work on."""

    server_url: str
    work: Path
    data: dataset.Dataset
    empty: dataset.Dataset
    dagster_home: Path
    cli: str  # the `backup-pipeline` console script
    levels: list[str]
    threads: list[int]
    default_level: str
    restore_source: RestoreSource | None = None

    @property
    def most_threads(self) -> int:
        return max(self.threads)

    @property
    def drill_level(self) -> str:
        """The level of the archive the drill and the restore floor use."""
        return self.default_level if self.default_level in self.levels else self.levels[0]

    def env(self, ds: dataset.Dataset, backup_dir: Path, **extra: str) -> dict[str, str]:
        conninfo, env = client_env(ds.database_url)
        return {**env, "CONNINFO": conninfo, "DATABASE_URL": ds.database_url,
                "DOCUMENTS_DIR": ds.documents_dir, "BACKUP_DIR": str(backup_dir),
                "DAGSTER_HOME": str(self.dagster_home), "WORK": str(backup_dir), **extra}

    def compression(self, level: str | None = None, threads: int | None = None
                    ) -> dict[str, str]:
        return {"BACKUP_COMPRESSION_LEVEL": level or self.default_level,
                "BACKUP_COMPRESSION_THREADS": str(threads or self.most_threads)}


@dataclass
class Case:
    key: str
    label: str
    command: Callable[[Context], tuple[list[str], dict[str, str]]]
    finish: Callable[[Context, Sample], dict] | None = None
    needs_data: bool = True
    group: str = ""  # what --only names: the key, or its group (every level of `backup`)
    level: str | None = None
    threads: int | None = None


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
        """The whole process, as a user (or the scheduler) runs it."""
        return self.median("wall")


def _bash(script: str) -> list[str]:
    return ["bash", "-c", "set -euo pipefail\n" + script]


def _last_json(sample: Sample) -> dict:
    return json.loads(sample.stdout.strip().splitlines()[-1])


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


def _drop_backup(ctx: Context, archive: Path, backup_id: str) -> None:
    """Remove an archive and its row (a row left without its file would clash with the next
    archive made in the same second)."""
    archive.unlink()
    for ds in (ctx.data, ctx.empty):
        with psycopg.connect(ds.database_url) as conn:
            conn.execute("DELETE FROM backup.backup_history WHERE id = %s", (backup_id,))


def _backup_dir(ctx: Context, empty: bool) -> Path:
    return ctx.work / f"backups-{(ctx.empty if empty else ctx.data).key}"


def cli_backup(empty: bool = False, level: str | None = None,
               threads: int | None = None) -> tuple[Callable, Callable]:
    """`backup-pipeline backup --json`, the whole process, at a compression level and thread
    count (in the environment, where the backup reads them); its finish keeps the size and the
    run's own duration from the record printed."""
    def command(ctx: Context) -> tuple[list[str], dict[str, str]]:
        return [ctx.cli, "backup", "--json"], \
            ctx.env(ctx.empty if empty else ctx.data, _backup_dir(ctx, empty),
                    **ctx.compression(level, threads))

    def finish(ctx: Context, sample: Sample) -> dict:
        record = json.loads(sample.stdout)
        _drop_backup(ctx, _backup_dir(ctx, empty) / record["file_name"], str(record["id"]))
        return {"archive_bytes": record["size_bytes"], "inside": record["duration_seconds"]}

    return command, finish


def worker_backup(empty: bool = False) -> tuple[Callable, Callable]:
    """The same backup without Dagster (worker.py backup-service), the whole process."""
    def command(ctx: Context) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, str(WORKER), "backup-service"], \
            ctx.env(ctx.empty if empty else ctx.data, _backup_dir(ctx, empty),
                    **ctx.compression())

    def finish(ctx: Context, sample: Sample) -> dict:
        made = _last_json(sample)
        _drop_backup(ctx, Path(made["archive_path"]), made["backup_id"])
        return {"archive_bytes": made["archive_bytes"], "inside": made["seconds"]}

    return command, finish


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
    """Made on first use: the archives the restore reps restore (see RestoreSource)."""
    if ctx.restore_source is not None:
        return ctx.restore_source
    log("restore: making the archives to restore (backups of a copy of the dataset, one per "
        "level)")
    name = _throwaway(ctx, RESTORE_SOURCE)
    _recreate(ctx, name, ctx.data.database)
    source = dataclasses.replace(ctx.data, database=name,
                                 database_url=with_database(ctx.server_url, name))
    archive_dir = ctx.work / "restore-archive"
    made = {}
    for level in ctx.levels:
        sample = measure.run([sys.executable, str(WORKER), "backup-service"],
                             env=ctx.env(source, archive_dir, **ctx.compression(level)))
        if sample.returncode != 0:
            raise SystemExit(f"the {level} backup to restore failed: "
                             f"{sample.stderr.strip()[-2000:]}")
        made[level] = _last_json(sample)
    dump_path = ctx.work / "restore-floor" / "motovaultpro.sql.gz"
    dump_path.parent.mkdir(parents=True)
    with tarfile.open(made[ctx.drill_level]["archive_path"], "r:gz") as tar, \
            open(dump_path, "wb") as out:
        shutil.copyfileobj(tar.extractfile(mf.DUMP_MEMBER), out, 1 << 20)
    ctx.restore_source = RestoreSource(
        name, archive_dir, {level: m["backup_id"] for level, m in made.items()}, dump_path)
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


def restore_floor_documents_command(ctx: Context) -> tuple[list[str], dict[str, str]]:
    """The floor of a restore of both: the dump loaded as above while the documents are
    copied into a new folder beside it, then both on disk (`sync`), as our restore has them
    before its swap."""
    argv, env = restore_floor_command(ctx)
    target = ctx.work / "restore-floor-documents"
    shutil.rmtree(target, ignore_errors=True)
    return _bash('gunzip -c "$DUMP" | psql -q -v ON_ERROR_STOP=1 --no-password '
                 '-d "$CONNINFO" > /dev/null &\n'
                 'load=$!\n'
                 'cp -r "$DOCUMENTS_DIR" "$COPY_TO"\n'
                 'wait "$load"\n'
                 'sync'), {**env, "COPY_TO": str(target)}


def restore_floor_finish(ctx: Context, sample: Sample) -> dict:
    drop_throwaways(ctx, RESTORE_FLOOR)
    shutil.rmtree(ctx.work / "restore-floor-documents", ignore_errors=True)
    return {}


def restore(level: str) -> tuple[Callable, Callable]:
    """A live database that has the data (a copy of the source) and a copy of the documents,
    then the restore of the level's archive onto them (worker.py restore-service)."""
    def command(ctx: Context) -> tuple[list[str], dict[str, str]]:
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
            ctx.env(live, source.archive_dir, RESTORE_BACKUP_ID=source.backup_ids[level])

    def finish(ctx: Context, sample: Sample) -> dict:
        seconds = _last_json(sample)["seconds"]
        drop_throwaways(ctx, RESTORE_LIVE)
        shutil.rmtree(ctx.work / "restore-live", ignore_errors=True)
        return {"inside": seconds}

    return command, finish


def drill_command(ctx: Context) -> tuple[list[str], dict[str, str]]:
    """The drill of the drill level's archive, beside the source database (only read)."""
    source = restore_source(ctx)
    os.sync()
    live = dataclasses.replace(ctx.data, database=source.database,
                               database_url=with_database(ctx.server_url, source.database))
    return [sys.executable, str(WORKER), "drill-service"], \
        ctx.env(live, source.archive_dir,
                RESTORE_BACKUP_ID=source.backup_ids[ctx.drill_level])


def drill_finish(ctx: Context, sample: Sample) -> dict:
    made = _last_json(sample)
    return {"inside": made["seconds"], "rto_seconds": made["rto_seconds"]}


def build(ctx: Context) -> list[Case]:
    """Every case of a run, in the order each repetition runs them."""
    cases = [
        Case("floor", "floor: `pg_dump > /dev/null` + read every document", floor_command,
             group="floor"),
        Case("naive", "naive: `pg_dump \\| gzip -6`, then `tar czf` of it and the documents",
             naive_command, naive_finish, group="naive"),
    ]
    cases += [Case(f"backup_{level}_t{threads}",
                   f"`backup-pipeline backup`, level {level}, {threads} "
                   f"thread{'s' if threads > 1 else ''}",
                   *cli_backup(level=level, threads=threads), group="backup", level=level,
                   threads=threads)
              for level in ctx.levels for threads in ctx.threads]
    cases += [
        Case("empty", "empty database, no documents: `backup-pipeline backup`",
             *cli_backup(empty=True), needs_data=False, group="empty"),
        Case("empty_direct", "empty database, no documents: the same without Dagster "
             "(`service.run_backup`)", *worker_backup(empty=True), needs_data=False,
             group="empty_direct"),
        Case("restore_floor", "restore floor: `gunzip -c dump.sql.gz \\| psql` into a new "
             "database", restore_floor_command, restore_floor_finish, group="restore_floor"),
        Case("restore_floor_documents", "restore floor with the documents: the same, and `cp -r` "
             "of the documents beside it, then `sync`", restore_floor_documents_command,
             restore_floor_finish, group="restore_floor_documents"),
    ]
    cases += [Case(f"restore_{level}", f"our restore of the level {level} archive without its "
                   "safety backup (claim, verify, load_database, swap, finish)",
                   *restore(level), group="restore", level=level)
              for level in ctx.levels]
    cases.append(Case("drill", "restore drill: scratch database and folder, counts and sha256 "
                      "compared, dropped (`drills.run_drill`)", drill_command, drill_finish,
                      group="drill"))
    return cases
