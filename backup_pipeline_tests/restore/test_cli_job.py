"""restore_job through Dagster, driven by the CLI: preview (JSON and the run's markdown),
the refusal without --yes, the restore itself, restore-status, and the guards."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from backup_pipeline.backup import service as backup_service
from backup_pipeline.backup.service import run_backup
from backup_pipeline.catalog import history, liveness
from backup_pipeline.cli import main
from backup_pipeline.cli.dagster_run import failure_message
from backup_pipeline.definitions import defs
from backup_pipeline.restore import runs, service
from backup_pipeline.restore.errors import RestoreBusyError, RestoreError
from backup_pipeline_tests.conftest import psql
from backup_pipeline_tests.helpers import run_backup_job
from backup_pipeline_tests.restore.helpers import database_fingerprint, tree_fingerprint


def cli(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_preview_then_restore_through_the_cli(app_env, capsys):
    settings = app_env.settings
    url = settings.database_url
    first = run_backup(settings)
    psql(url, "-c", "DELETE FROM payment WHERE payment_id % 2 = 0;"
         " INSERT INTO language (name) VALUES ('Klingon')")
    (settings.documents_dir / "1001" / "invoice-2024.txt").write_bytes(b"changed")
    (settings.documents_dir / "1005").mkdir()
    (settings.documents_dir / "1005" / "added.pdf").write_bytes(b"%PDF" + b"x" * 100)
    later = run_backup(settings)
    changed_db = database_fingerprint(url)
    changed_docs = tree_fingerprint(settings.documents_dir)

    code, preview, err = cli(capsys, "restore", first["id"], "--preview")
    assert code == 0, err
    tables = {t["table"]: t for t in preview["tables"]}
    assert tables["public.language"]["change"] == -1
    assert tables["public.payment_p2022_02"]["change"] > 0
    assert tables["public.actor"]["change"] == 0
    users = {u["user"]: u for u in preview["documents"]["users"]}
    assert users["1001"]["changed"] == 1 and users["1001"]["changed_bytes"] == 2600
    assert users["1005"]["removed"] == 1 and users["1005"]["removed_bytes"] == 104
    assert users["1002"]["unchanged"] == 2
    assert any("older than 1 other backups" in w for w in preview["warnings"])
    assert preview["backup"]["server_version"].startswith("15")
    # a preview changes nothing and takes no safety backup
    assert database_fingerprint(url) == changed_db
    assert tree_fingerprint(settings.documents_dir) == changed_docs
    assert history.list_page(url, backup_type="safety")["total"] == 0
    # the run shows the preview as a markdown table
    with dg.DagsterInstance.get() as instance:
        records = instance.get_records_for_run(preview["dagster_run_id"],
                                               of_type=dg.DagsterEventType.STEP_OUTPUT).records
        outputs = [r.event_log_entry.dagster_event.event_specific_data for r in records]
        metadata = {k: v for output in outputs for k, v in output.metadata.items()}
    assert isinstance(metadata["preview"], dg.MarkdownMetadataValue)
    assert "| public.language | 6 | 7 | -1 |" in metadata["preview"].md_str

    code, data, err = cli(capsys, "restore", first["id"])
    assert code == 1 and data is None
    assert err.strip().endswith("add --yes to go ahead, or --preview to see what it would change")
    assert len(err.strip().splitlines()) == 1

    code, record, err = cli(capsys, "restore", first["id"], "--yes")
    assert code == 0, err
    assert record["state"] == "completed" and record["safety_backup_id"]
    assert tree_fingerprint(settings.documents_dir) != changed_docs
    code, status, _ = cli(capsys, "restore-status")
    assert status["id"] == record["id"] and status["state"] == "completed"
    assert status["safety_backup_id"] == record["safety_backup_id"]
    assert status["dagster_run_id"] == record["dagster_run_id"]
    # the safety backup is a backup_job run of its own, and the later backup is still listed
    safety = history.get(url, record["safety_backup_id"])
    assert safety["backup_type"] == "safety" and safety["dagster_run_id"]
    assert history.get(url, later["id"])["status"] == "completed"
    code, listing, _ = cli(capsys, "list", "--type", "safety")
    assert [r["id"] for r in listing["items"]] == [safety["id"]]
    # restoring the safety backup brings back the changed state
    code, record, err = cli(capsys, "restore", safety["id"], "--yes")
    assert code == 0, err
    assert database_fingerprint(url) == changed_db
    assert tree_fingerprint(settings.documents_dir) == changed_docs


def test_one_restore_at_a_time_and_no_backup_meanwhile(app_env, capsys):
    settings = app_env.settings
    url = settings.database_url
    backup = run_backup(settings)
    running = service.claim(settings, backup["id"], dry_run=False, run_id="run-1")
    with pytest.raises(RestoreBusyError, match=f"restore {running.restore_id} .* is running"):
        service.claim(settings, backup["id"], dry_run=False)
    # previews may still run
    preview = service.run_restore(settings, backup["id"], dry_run=True)
    assert preview["warnings"] == []
    # no backup of the database while the restore runs, through the job as well
    with pytest.raises(RestoreBusyError, match="a manual backup is refused"):
        run_backup(settings)
    code, _, err = cli(capsys, "backup")
    assert code == 1 and "a manual backup is refused: restore" in err
    assert history.list_page(url, status="failed")["total"] == 0
    # its process holds the restore's lock: nothing reaps it
    assert runs.reap(url) == []
    assert runs.get(url, running.restore_id)["state"] == "running"
    # the process running it ended without finishing it: the next status call reaps it
    liveness.release(running.restore_id, kind="restore")
    code, status, _ = cli(capsys, "restore-status")
    assert status["id"] == running.restore_id and status["state"] == "failed"
    failed = runs.get(url, running.restore_id)
    assert failed["state"] == "failed" and "interrupted" in failed["error_message"]
    assert run_backup(settings)["status"] == "completed"


def test_a_restore_whose_process_died_does_not_block_the_next_backup_job(app_env):
    """backup_job marks failed a restore whose process has ended (nobody holds its lock),
    whatever its Dagster run says, instead of refusing every backup until somebody looks."""
    settings = app_env.settings
    url = settings.database_url
    backup = run_backup(settings)
    instance = dg.DagsterInstance.ephemeral()
    ended_run = run_backup_job(instance).run_id  # a run that is over does not matter
    dead = service.claim(settings, backup["id"], dry_run=False, run_id=ended_run)
    refused = run_backup_job(instance)
    assert not refused.success and "is refused: restore" in failure_message(refused)

    liveness.release(dead.restore_id, kind="restore")  # as when its process dies
    result = run_backup_job(instance)
    assert result.success, failure_message(result)
    row = runs.get(url, dead.restore_id)
    assert row["state"] == "failed" and "interrupted: the process running it ended" in \
        row["error_message"]


def test_a_restore_waits_for_a_running_backup(app_env):
    settings = app_env.settings
    backup = run_backup(settings)
    other = backup_service.begin(settings, backup_type="manual", trigger="test")
    with pytest.raises(RestoreBusyError, match=f"backup {other.backup_id} .* is being written"):
        service.claim(settings, backup["id"], dry_run=False)
    liveness.release(other.backup_id)  # as when its process dies
    plan = service.claim(settings, backup["id"], dry_run=False)
    assert runs.get(settings.database_url, plan.restore_id)["state"] == "running"
    assert history.get(settings.database_url, other.backup_id)["status"] == "failed"


def test_restore_job_is_launchable_with_defaults(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/app")
    job = defs.get_job_def("restore_job")
    assert job.executor_def is dg.in_process_executor
    config = {"ops": {"start_restore": {"config": {"backup_id": "x"}}}}
    assert dg.validate_run_config(job, config)["ops"]["start_restore"]["config"] == {
        "backup_id": "x", "dry_run": True, "scope": "both", "trigger": "ui", "restore_id": None}


def test_unknown_or_unfinished_backups_are_refused(app_env):
    settings = app_env.settings
    with pytest.raises(Exception, match="no backup with id"):
        service.claim(settings, "00000000-0000-0000-0000-000000000000")
    row = history.create(settings.database_url, backup_type="manual", trigger="test")
    with pytest.raises(RestoreError, match="is in_progress, not completed"):
        service.claim(settings, row["id"])
