"""The benchmark's report: medians as markdown tables, and the targets (issue 16), each met or
missed and by how much."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.cases import Context, Result


@dataclass
class Target:
    label: str
    measured: Callable[[dict[str, Result]], float | None]
    limit: float
    unit: str
    at_most: bool = True
    strict: bool = False  # < (or >) rather than ≤ (or ≥)

    def check(self, results: dict[str, Result]) -> tuple[float | None, bool | None]:
        try:
            value = self.measured(results)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None, None  # a case it needs was not run
        if value is None:
            return None, None
        if self.at_most:
            return value, value < self.limit if self.strict else value <= self.limit
        return value, value > self.limit if self.strict else value >= self.limit

    @property
    def sign(self) -> str:
        return ("<" if self.strict else "≤") if self.at_most else (">" if self.strict else "≥")

    def margin(self, value: float) -> str:
        """How far the measurement is from the limit, in the unit and as a share of it."""
        gap = value - self.limit
        side = ("over" if gap > 0 else "under") if self.at_most else \
            ("above" if gap > 0 else "below")
        return f"{abs(gap):.2f} {self.unit} {side} ({abs(gap) / self.limit:.0%})"


def _ratio(a: str, b: str, what: str = "seconds") -> Callable[[dict[str, Result]], float]:
    def measured(results: dict[str, Result]) -> float:
        get = (lambda r: r.seconds) if what == "seconds" else (lambda r: r.median(what))
        return get(results[a]) / get(results[b])
    return measured


def _largest(keys: list[str], what: str) -> Callable[[dict[str, Result]], float]:
    return lambda results: max(results[k].median(what) for k in keys if k in results)


def targets(ctx: Context, scale: float) -> list[Target]:
    """Issue 16's targets, at the default level and the most threads where they name none."""
    most, default = ctx.most_threads, ctx.default_level
    best = f"backup_{default}_t{most}"
    backups = [f"backup_{level}_t{threads}" for level in ctx.levels for threads in ctx.threads]
    restores = [f"restore_{level}" for level in ctx.levels]
    made = [
        Target(f"archive / naive archive, level {default}, {most} threads",
               _ratio(best, "naive", "archive_bytes"), 1.00, "x"),
        Target(f"naive time / backup time, level {default}, {most} threads (the target is "
               f"stated at scale 4; this run: scale {scale:g})", _ratio("naive", best), 3.5,
               "x", at_most=False),
        Target(f"backup time / floor, level fast, {most} threads",
               _ratio(f"backup_fast_t{most}", "floor"), 1.35, "x"),
        Target("backup peak memory, the largest of every level and thread count",
               _largest(backups, "peak_mb"), 200, "MB", strict=True),
    ]
    made += [Target(f"restore time / restore floor, level {level}",
                    _ratio(f"restore_{level}", "restore_floor"), 1.2, "x")
             for level in ctx.levels]
    made += [Target(f"restore time / restore floor with the documents, level {level} (for "
                    "reference: our restore restores both)",
                    _ratio(f"restore_{level}", "restore_floor_documents"), 1.2, "x")
             for level in ctx.levels]
    made += [
        Target("restore peak memory, the largest of every level", _largest(restores, "peak_mb"),
               200, "MB", strict=True),
        Target("drill time / restore floor", _ratio("drill", "restore_floor"), 1.3, "x"),
        Target("drill RTO (loaded and checked, before the drop) / restore floor",
               lambda r: r["drill"].median("rto_seconds") / r["restore_floor"].seconds, 1.3,
               "x"),
    ]
    return made


def _mb(n: float | None) -> str:
    return "–" if n is None else f"{n / 1e6:,.1f}"


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def levels_table(results: dict[str, Result]) -> list[str]:
    """A row per (level, threads): the backup against the floor and the naive pipeline, and
    the restore of that level's archive against the restore floor."""
    floor, naive = results.get("floor"), results.get("naive")
    restore_floor = results.get("restore_floor")
    lines = ["| level | threads | time (s) | × floor | naive ÷ time | archive (MB) "
             "| × naive size | peak (MB) | restore (s) | × restore floor |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results.values():
        if r.case.group != "backup":
            continue
        restore = results.get(f"restore_{r.case.level}")
        restore_s = restore.seconds if restore else None
        archive = r.median("archive_bytes")
        lines.append(
            f"| {r.case.level} | {r.case.threads} | {_num(r.seconds)} | "
            f"{_num(_div(r.seconds, floor and floor.seconds))} | "
            f"{_num(_div(naive and naive.seconds, r.seconds))} | {_mb(archive)} | "
            f"{_num(_div(archive, naive and naive.median('archive_bytes')), 3)} | "
            f"{_num(r.median('peak_mb'), 0)} | {_num(restore_s)} | "
            f"{_num(_div(restore_s, restore_floor and restore_floor.seconds))} |")
    return lines if len(lines) > 2 else []


def report(ctx: Context, results: dict[str, Result], args, machine: dict, loads: list[str],
           pg_version: str) -> str:
    data = ctx.data
    ratio = f", `gzip -6` {data.gzip_ratio:.2f} x" if data.gzip_ratio else ""
    lines = [
        f"### Scale {args.scale:g} ({args.repeat} repetitions, medians)",
        "",
        f"Machine: {machine['nproc']} × {machine['cpu']}, {machine['memory']} RAM, "
        f"Linux {machine['kernel']}, PostgreSQL {pg_version}, Python {machine['python']}; "
        f"load average (1/5/15 min) before {loads[0]}, after {loads[1]}.",
        "",
        f"Dataset ({data.kind}): database {_mb(data.database_bytes)} MB (plain dump "
        f"{_mb(data.dump_bytes)} MB{ratio}), {data.documents:,} documents "
        f"{_mb(data.documents_bytes)} MB "
        f"({100 * data.compressible_bytes / max(1, data.documents_bytes):.0f}% compressible). "
        f"Dagster instance storage: {args.dagster_storage}. Default level {ctx.default_level}; "
        f"compression threads {', '.join(map(str, ctx.threads))}.",
        "",
        "| measurement | time (s) | range (s) | inside (s) | CPU (s) | peak memory (MB) "
        "| archive (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.values():
        times = r.values("wall")
        lines.append(
            f"| {r.case.label} | {_num(r.seconds)} | {_num(min(times))}–{_num(max(times))} | "
            f"{_num(r.median('inside'))} | {_num(r.median('cpu'))} | "
            f"{_num(r.median('peak_mb'), 0)} | {_mb(r.median('archive_bytes'))} |")
    table = levels_table(results)
    if table:
        lines += ["", *table]
    if "empty" in results and "empty_direct" in results:
        cli, direct = results["empty"].seconds, results["empty_direct"].seconds
        lines += ["", f"Dagster's fixed cost (empty database, no documents, whole process): "
                  f"{cli - direct:.2f} s (`backup-pipeline backup` {cli:.2f} s, the same "
                  f"without Dagster {direct:.2f} s)."]
    lines += ["", "| target | measured | limit | | by |", "|---|---:|---:|---|---|"]
    for target in targets(ctx, args.scale):
        value, ok = target.check(results)
        if value is None:
            lines.append(f"| {target.label} | – | {target.sign} {target.limit:g} {target.unit} "
                         "| not measured | |")
            continue
        lines.append(f"| {target.label} | {value:.2f} {target.unit} | {target.sign} "
                     f"{target.limit:g} {target.unit} | {'met' if ok else '**missed**'} | "
                     f"{target.margin(value)} |")
    lines += ["", "Time is the whole command as it is run (interpreter start and imports "
              "included; for our backups `backup-pipeline backup --json`, for our restore and "
              "drill `benchmarks/worker.py`); inside is the operation alone (the backup run's "
              "own duration from its record, the restore's and the drill's steps); CPU is the "
              "user and system time of the command's processes (not the database server's). "
              "Peak memory is the largest sum of the resident memory of the command's whole "
              "process tree (pg_dump included), sampled every 50 ms."]
    return "\n".join(lines)
