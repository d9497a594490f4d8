"""Every job tags its runs so that the run queue of deploy/dagster.yaml can keep them apart."""

import pytest

from backup_pipeline.definitions import defs
from backup_pipeline.jobs import DATABASE_TAG, KIND_TAG, run_tags


def test_every_job_carries_the_queue_tags():
    for job in defs.get_repository_def().get_all_jobs():
        if job.name.startswith("__"):  # Dagster's implicit asset job
            continue
        assert job.run_tags.get(KIND_TAG), job.name
        if job.name != "drill_job":
            assert job.run_tags.get(DATABASE_TAG), job.name
    assert defs.get_job_def("backup_job").run_tags[KIND_TAG] == "backup"


def test_a_drill_does_not_queue_behind_backups():
    """It touches no live data: without the database tag it neither waits for a backup nor
    holds one up in the run queue."""
    assert defs.get_job_def("drill_job").run_tags == {KIND_TAG: "drill"}


@pytest.mark.parametrize(("url", "database"), [
    ("postgresql://app:secret@db:5432/motovaultpro", "motovaultpro"),
    ("host=db dbname=motovaultpro_demo user=app", "motovaultpro_demo"),
    ("", "unset"),
    ("not a url at all", "unset"),
])
def test_run_tags_name_the_database(monkeypatch: pytest.MonkeyPatch, url: str, database: str):
    monkeypatch.setenv("DATABASE_URL", url)
    assert run_tags("restore") == {KIND_TAG: "restore", DATABASE_TAG: database}
