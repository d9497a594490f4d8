"""Running one measured command: wall time, peak memory of its whole process tree, its output.

Peak memory is the largest sum of the resident set sizes of the command and all its
descendants seen at one moment (sampled every 50 ms), so a pipeline counts every program in
it (pg_dump included), and a fork not yet exec'd counts once (see tree_rss);
`max_process_mb` is the kernel's exact peak of the largest single one. `cpu` is the user and
system time of the command and its descendants (not the database server's).
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_SECONDS = 0.05


@dataclass
class Sample:
    wall: float
    cpu: float
    peak_mb: float
    max_process_mb: float
    returncode: int
    stdout: str
    stderr: str


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _program(pid: int) -> tuple[str, bytes] | None:
    """What pid runs: its executable and command line (both change when it execs)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.readlink(f"/proc/{pid}/exe"), f.read()
    except OSError:
        return None


def tree_rss(pid: int) -> int:
    """Bytes resident in pid and all its descendants right now. A child that runs its
    parent's program with its parent's command line is a fork that has not exec'd yet
    (pg_dump being started): its pages are its parent's, so they count once, not twice (a
    180 MB process starting pg_dump showed as ~300 MB for an instant)."""
    children = _children_map()
    total, todo = 0, [(pid, None)]
    while todo:
        p, parent_program = todo.pop()
        program = _program(p)
        todo.extend((child, program) for child in children.get(p, ()))
        if program is not None and program == parent_program:
            continue
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 3600) -> Sample:
    peak = 0
    done = threading.Event()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)

        def sample() -> None:
            nonlocal peak
            while not done.wait(SAMPLE_SECONDS):
                peak = max(peak, tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            # wait4, not Popen.wait: its rusage is this command's own (the largest process of
            # its tree), where RUSAGE_CHILDREN would mix in every earlier command
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            wall = time.perf_counter() - started
            killer.cancel()
            done.set()
            sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Sample(wall, cpu, peak / 1e6, usage.ru_maxrss * 1024 / 1e6, proc.returncode,
                      out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
