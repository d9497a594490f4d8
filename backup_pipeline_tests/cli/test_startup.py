"""What `backup-pipeline` costs before it does anything: the command line loads no heavy
library, and Dagster's import runs with the cyclic GC paused, which is then back on."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["dagster", "dagster_aws", "boto3", "redis", "fastapi", "uvicorn", "apprise",
         "prometheus_client", "pydantic"]


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads(done.stdout)


def test_the_command_line_imports_no_heavy_library():
    """Commands import what they need when they run: `list` needs none of these, and Dagster
    must first be imported inside startup_without_gc for the pause to pay."""
    loaded = _run(f"import json, sys; import backup_pipeline.cli; "
                  f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert loaded == []


def test_startup_pauses_the_gc_once_and_turns_it_back_on():
    state = _run("""
import gc, json
from backup_pipeline.cli import dagster_run
seen = {}
try:
    with dagster_run.startup_without_gc():
        import dagster  # noqa: F401
        seen["inside"] = gc.isenabled()
        raise RuntimeError("a failed start")
except RuntimeError:
    pass
seen["after"] = gc.isenabled()
seen["frozen"] = gc.get_freeze_count()
with dagster_run.startup_without_gc():
    seen["second"] = gc.isenabled()
seen["frozen_again"] = gc.get_freeze_count()
print(json.dumps(seen))
""")
    assert state["inside"] is False and state["after"] is True
    assert state["frozen"] > 100_000  # Dagster's modules, classes and functions
    assert state["second"] is True and state["frozen_again"] == state["frozen"]
