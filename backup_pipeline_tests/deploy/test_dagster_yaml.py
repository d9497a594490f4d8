"""deploy/dagster.yaml is a valid instance for the pinned Dagster, its Postgres storage really
initializes, and its run queue keeps restores and backups of one database apart."""

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._utils.tags import TagConcurrencyLimitsCounter

from backup_pipeline.jobs import run_tags
from backup_pipeline_tests.conftest import psql
from backup_pipeline_tests.deploy.stack import (
    PRODUCTION_DAGSTER_YAML,
    REPO,
    dagster_pg_env,
    production_home,
)

LOCAL_DAGSTER_YAML = REPO / "dagster.yaml"


@pytest.fixture(scope="module")
def production_instance(tmp_path_factory: pytest.TempPathFactory, databases):
    """deploy/dagster.yaml as it is, its DAGSTER_PG_* variables naming a throwaway database."""
    url = databases.create()
    home = production_home(tmp_path_factory.mktemp("dagster_home"))
    with pytest.MonkeyPatch.context() as env:
        for key, value in dagster_pg_env(url).items():
            env.setenv(key, value)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance, url


@dg.op
def ping() -> int:
    return 1


@dg.job
def ping_job():
    ping()


def test_production_config_passes_dagster_validation(tmp_path: Path):
    config, custom_class = dagster_instance_config(str(production_home(tmp_path)))
    assert custom_class is None
    assert config["telemetry"] == {"enabled": False}
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {
        "env": "DAGSTER_PG_PASSWORD"}


def test_production_instance_stores_runs_in_postgres(production_instance):
    instance, url = production_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    result = ping_job.execute_in_process(instance=instance)
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
    tables = psql(url, "-Atc", "select tablename from pg_tables where schemaname = 'public'")
    assert {"runs", "event_logs", "jobs", "instigators"} <= set(tables.split())


def test_production_instance_serves_the_webserver(tmp_path: Path, production_instance):
    """The webserver holds one connection with a statement timeout; dagster-postgres sets that
    up in a way that closes a psycopg 3 connection, so the driver is named in the config."""
    with dg.DagsterInstance.from_config(str(production_home(tmp_path))) as instance:
        instance.optimize_for_webserver(statement_timeout=15000, pool_recycle=3600,
                                        max_overflow=20)
        assert instance.run_storage.get_run_storage_id()
        assert instance.run_storage._engine.dialect.driver == "psycopg2"


def test_production_instance_settings(production_instance):
    instance, _ = production_instance
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    assert not instance.telemetry_enabled
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_runtime_seconds == 6 * 3600
    sensor_ticks = instance.get_tick_retention_settings(InstigatorType.SENSOR)
    assert sensor_ticks[TickStatus.SKIPPED] == 7
    assert instance.get_tick_retention_settings(InstigatorType.SCHEDULE)[TickStatus.SUCCESS] == 90


def _run(kind: str, database: str, monkeypatch: pytest.MonkeyPatch) -> DagsterRun:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app@db.example/{database}")
    return DagsterRun(job_name=f"{kind}_job", tags=run_tags(kind))


def test_run_queue_keeps_restores_and_backups_of_one_database_apart(
    production_instance, monkeypatch: pytest.MonkeyPatch,
):
    """Dagster's own tag-limit counter, with the limits of deploy/dagster.yaml and our tags."""
    instance, _ = production_instance
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits

    def blocked(candidate: DagsterRun, *in_progress: DagsterRun) -> bool:
        return TagConcurrencyLimitsCounter(limits, list(in_progress)).is_blocked(candidate)

    restore_a, restore_b = _run("restore", "a", monkeypatch), _run("restore", "b", monkeypatch)
    backup_a, backup_b = _run("backup", "a", monkeypatch), _run("backup", "b", monkeypatch)
    retention_a = _run("retention", "a", monkeypatch)

    assert not blocked(restore_a)
    assert blocked(backup_a, restore_a)
    assert blocked(retention_a, restore_a)
    assert blocked(restore_a, backup_a)
    assert blocked(restore_b, restore_a)  # one restore at a time, whatever its database
    assert blocked(backup_a, backup_b, backup_a)  # backups of one database: one after another
    assert not blocked(backup_b, restore_a)
    assert not blocked(restore_b, backup_a)


def test_local_config_keeps_sqlite_with_the_production_queue(tmp_path: Path):
    """`make dev` and `make backup` use the root dagster.yaml: SQLite in DAGSTER_HOME, and the
    same run queue and monitoring as production so runs queue locally as they do deployed."""
    local = yaml.safe_load(LOCAL_DAGSTER_YAML.read_text())
    production = yaml.safe_load(PRODUCTION_DAGSTER_YAML.read_text())
    for section in ("telemetry", "run_coordinator", "concurrency", "run_monitoring"):
        assert local[section] == production[section], section
    assert "storage" not in local
    (tmp_path / "dagster.yaml").write_text(LOCAL_DAGSTER_YAML.read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
