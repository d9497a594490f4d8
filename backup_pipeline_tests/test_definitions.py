"""All definitions load, and `dagster definitions validate` accepts the module."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from backup_pipeline.definitions import defs


def test_definitions_load():
    repo = defs.get_repository_def()
    assert repo.get_job("backup_job").executor_def is dg.in_process_executor
    asset_keys = {spec.key for spec in defs.resolve_all_asset_specs()}
    assert dg.AssetKey("motovaultpro_backup") in asset_keys
    checks = set(repo.asset_graph.asset_check_keys)
    assert dg.AssetCheckKey(dg.AssetKey("motovaultpro_backup"), "backup_freshness") in checks
    assert dg.AssetCheckKey(dg.AssetKey("motovaultpro_backup"), "restore_drill") in checks
    assert repo.get_job("drill_job").executor_def is dg.in_process_executor
    drill = repo.get_schedule_def("restore_drill_schedule")
    assert drill.job_name == "drill_job" and drill.cron_schedule == "0 5 * * 0"
    assert drill.default_status == dg.DefaultScheduleStatus.RUNNING
    sensor = repo.get_sensor_def("backup_freshness_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert 60 <= sensor.minimum_interval_seconds <= 600


def test_dagster_definitions_validate(tmp_path: Path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate",
         "-m", "backup_pipeline.definitions"],
        capture_output=True, text=True, env={**os.environ,
                                             "DAGSTER_HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_definitions_import_no_client_of_an_optional_service():
    """boto3 (through dagster-aws too) and redis are imported when offsite copies or a Redis
    lock are used, not by every process that loads the code location (each backup included)."""
    optional = ["boto3", "dagster_aws", "redis"]
    done = subprocess.run(
        [sys.executable, "-c", "import sys; import backup_pipeline.definitions; "
         f"print(' '.join(m for m in {optional!r} if m in sys.modules))"],
        capture_output=True, text=True, check=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k not in ("OFFSITE_URL", "REDIS_URL")})
    assert done.stdout.split() == []
