"""Retention with mixed backup types and statuses: exactly the expected files and rows remain,
and what is odd (missing archives, files without rows) is reported, never dropped."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from backup_pipeline.definitions import defs
from backup_pipeline.scheduling import catalog, retention
from backup_pipeline.settings import Settings

T0 = datetime(2026, 1, 31, 3, 0, tzinfo=UTC)
UNKNOWN = "motovaultpro_backup_20200101_000000.tar.gz"


class Catalog:
    """Backup rows (with or without their archive files) written straight into the catalog."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.ids: dict[str, str] = {}
        settings.backup_dir.mkdir()

    def add(self, label: str, *, age_days: int, schedule: dict | None = None,
            backup_type: str = "scheduled", status: str = "completed", file: bool = True) -> None:
        name = f"motovaultpro_backup_{label}.tar.gz" if status == "completed" else None
        with psycopg.connect(self.settings.database_url) as conn:
            self.ids[label] = str(conn.execute(
                "INSERT INTO backup.backup_history (backup_type, status, trigger, schedule_id,"
                " file_name, size_bytes, started_at, completed_at)"
                " VALUES (%s, %s, 'test', %s, %s, 10, %s, %s) RETURNING id",
                (backup_type, status, schedule["id"] if schedule else None, name,
                 T0 - timedelta(days=age_days), T0 - timedelta(days=age_days)),
            ).fetchone()[0])
        if name and file:
            (self.settings.backup_dir / name).write_bytes(b"x" * 10)

    def remaining(self) -> tuple[set[str], set[str]]:
        with psycopg.connect(self.settings.database_url) as conn:
            ids = {str(r[0]) for r in conn.execute("SELECT id FROM backup.backup_history")}
        labels = {label for label, i in self.ids.items() if i in ids}
        files = {p.name for p in self.settings.backup_dir.iterdir() if p.is_file()}
        return labels, files


def record_restore(url: str, backup_id: str, state: str) -> None:
    """restore_job's table (backup.restore_runs: backup_id, state); made here if absent."""
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('backup.restore_runs')").fetchone()[0] is None:
            conn.execute("CREATE TABLE backup.restore_runs (id bigserial PRIMARY KEY,"
                         " backup_id uuid REFERENCES backup.backup_history (id)"
                         "   ON DELETE SET NULL,"
                         " state text NOT NULL)")
        conn.execute("INSERT INTO backup.restore_runs (backup_id, state) VALUES (%s, %s)",
                     (backup_id, state))


@pytest.fixture
def mixed(catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    settings = Settings(catalog_url, tmp_path / "documents", tmp_path / "backups")
    for key, value in (("DATABASE_URL", catalog_url), ("BACKUP_DIR", str(settings.backup_dir)),
                       ("DOCUMENTS_DIR", str(settings.documents_dir)),
                       ("DAGSTER_HOME", str(tmp_path))):
        monkeypatch.setenv(key, value)
    c = Catalog(settings)
    a = catalog.create(catalog_url, name="a", frequency="daily", retention=2)
    b = catalog.create(catalog_url, name="b", frequency="hourly", retention=1)
    gone = catalog.create(catalog_url, name="gone", frequency="weekly", retention=1)
    # Schedule a keeps 2. Newest first: failed and running ones never count; a2's archive
    # is missing (reported, not counted, kept); a5 is being restored right now.
    c.add("a_failed", age_days=0, schedule=a, status="failed")
    c.add("a_running", age_days=0, schedule=a, status="in_progress")
    c.add("a1", age_days=1, schedule=a)
    c.add("a2", age_days=2, schedule=a, file=False)
    c.add("a3", age_days=3, schedule=a)
    c.add("a4", age_days=4, schedule=a)
    c.add("a5", age_days=5, schedule=a)
    c.add("a6", age_days=6, schedule=a)
    # Tied to schedule a, but not scheduled backups: never deleted, never counted.
    c.add("a_manual", age_days=30, schedule=a, backup_type="manual")
    c.add("a_safety", age_days=31, schedule=a, backup_type="safety")
    c.add("uploaded", age_days=40, backup_type="uploaded")
    # Schedule b: its only completed backup stays, however many failed after it.
    c.add("b1", age_days=10, schedule=b)
    c.add("b_failed1", age_days=1, schedule=b, status="failed")
    c.add("b_failed2", age_days=0, schedule=b, status="failed")
    # Schedule gone: every archive missing, nothing deleted.
    c.add("g1", age_days=1, schedule=gone, file=False)
    c.add("g2", age_days=2, schedule=gone, file=False)
    (settings.backup_dir / UNKNOWN).write_bytes(b"made elsewhere")
    (settings.backup_dir / ".staging").mkdir()
    record_restore(catalog_url, c.ids["a5"], "running")
    record_restore(catalog_url, c.ids["a4"], "completed")  # finished: does not protect
    return c


def test_retention_job_removes_exactly_the_expected_backups(mixed: Catalog):
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.get_job_def("retention_job").execute_in_process(
            instance=instance, raise_on_error=False)
    assert result.success

    labels, files = mixed.remaining()
    assert labels == set(mixed.ids) - {"a4", "a6"}
    assert files == {f"motovaultpro_backup_{x}.tar.gz" for x in
                     ("a1", "a3", "a5", "a_manual", "a_safety", "uploaded", "b1")} | {UNKNOWN}

    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    meta = {k: v.value for k, v in event.step_output_data.metadata.items()}
    assert (meta["deleted"], meta["kept"], meta["protected_by_restore"]) == (2, 3, 1)
    assert (meta["missing_files"], meta["unknown_files"], meta["errors"]) == (3, 1, 0)
    assert "motovaultpro_backup_a2.tar.gz" in meta["missing_files_table"]
    assert "motovaultpro_backup_g1.tar.gz" in meta["missing_files_table"]
    assert UNKNOWN in meta["unknown_files_table"]
    assert "motovaultpro_backup_a5.tar.gz" in meta["protected_by_restore_table"]

    # Once the restore finished, a5 goes too; a second sweep changes nothing else.
    with psycopg.connect(mixed.settings.database_url) as conn:
        conn.execute("UPDATE backup.restore_runs SET state = 'completed'")
    report = retention.apply(mixed.settings)
    assert [d["file_name"] for d in report.deleted] == ["motovaultpro_backup_a5.tar.gz"]
    assert mixed.remaining()[0] == set(mixed.ids) - {"a4", "a5", "a6"}


def test_dry_run_and_single_schedule(mixed: Catalog):
    before = mixed.remaining()
    report = retention.apply(mixed.settings, dry_run=True)
    assert mixed.remaining() == before
    [a] = [p for p in report.schedules if p.name == "a"]
    assert [r["file_name"] for r in a.delete] == ["motovaultpro_backup_a4.tar.gz",
                                                 "motovaultpro_backup_a6.tar.gz"]

    b_id = next(p.schedule_id for p in report.schedules if p.name == "b")
    only_b = retention.apply(mixed.settings, b_id)
    assert [p.name for p in only_b.schedules] == ["b"] and only_b.deleted == []
    assert only_b.unknown_files == []  # a single schedule's sweep does not audit the folder
    assert mixed.remaining() == before


def test_a_pending_restore_protects(mixed: Catalog):
    record_restore(mixed.settings.database_url, mixed.ids["a6"], "pending")
    retention.apply(mixed.settings)
    assert {"a5", "a6"} <= mixed.remaining()[0]


def test_deletion_rechecks_what_it_keeps(mixed: Catalog):
    """If a kept backup disappears between plan and deletion, nothing more is deleted."""
    [a] = [p for p in retention.plan(mixed.settings) if p.name == "a"]
    (mixed.settings.backup_dir / "motovaultpro_backup_a1.tar.gz").unlink()
    problem = retention._delete_one(mixed.settings, a, a.delete[0])
    assert problem.startswith("stopped")
    assert "a4" in mixed.remaining()[0]


def test_the_nightly_sweep_forgets_slot_claims_long_past(mixed: Catalog):
    url = mixed.settings.database_url
    [a] = [s for s in catalog.list_all(url) if s["name"] == "a"]
    now = datetime.now(UTC)
    claims = {  # label: (slot age, state, lease end relative to now)
        "old_completed": (timedelta(days=40), "completed", -timedelta(days=40)),
        "old_failed": (timedelta(days=31), "failed", -timedelta(days=31)),
        "old_claim_lease_ended_long_ago": (timedelta(days=45), "claimed", -timedelta(days=44)),
        "old_claim_lease_still_running": (timedelta(days=46), "claimed", timedelta(minutes=5)),
        "recent_completed": (timedelta(days=2), "completed", -timedelta(days=2)),
    }
    with psycopg.connect(url) as conn:
        for label, (age, state, lease) in claims.items():
            conn.execute("INSERT INTO backup.schedule_slots (schedule_id, slot_time, state,"
                         " owner_token, lease_until) VALUES (%s, %s, %s, %s, %s)",
                         (a["id"], now - age, state, label, now + lease))
    assert retention.apply(mixed.settings, dry_run=True).pruned_slot_claims == 0
    report = retention.apply(mixed.settings)
    assert report.summary()["pruned_slot_claims"] == 3
    with psycopg.connect(url) as conn:
        left = {r[0] for r in conn.execute("SELECT owner_token FROM backup.schedule_slots")}
    assert left == {"old_claim_lease_still_running", "recent_completed"}
