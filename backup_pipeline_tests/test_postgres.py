"""A malformed DATABASE_URL: libpq quotes the URL in its errors; none of it may show a password."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from backup_pipeline.postgres import redact
from backup_pipeline_tests.conftest import make_dagster_home
from backup_pipeline_tests.helpers import run_backup_job, run_cli

PASSWORD = "SECRET"
MALFORMED = {
    "bad escape and a space": ("postgresql://u:p%zzSECRET pw@127.0.0.1/db",
                               "invalid percent-encoded token"),
    "bad escape": ("postgresql://u:p%zzSECRET@127.0.0.1/db", "invalid percent-encoded token"),
    "a space": ("postgresql://u:SECRET pw@127.0.0.1/db", "unexpected spaces"),
    "unclosed IPv6 host": ("postgresql://u:SECRETpw@[::1/db", "IPv6 host address"),
    "bad escape in a password parameter": ("postgresql://u@127.0.0.1/db?password=x%zzSECRET",
                                           "invalid percent-encoded token"),
}


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "BACKUP_DIR": str(tmp_path / "backups"),
            "DOCUMENTS_DIR": str(tmp_path / "documents"),
            "DAGSTER_HOME": str(make_dagster_home(tmp_path / "home"))}


@pytest.mark.parametrize("case", list(MALFORMED))
@pytest.mark.parametrize("command", [["--json", "backup"], ["migrate"], ["list"],
                                     ["--debug", "import", "/nonexistent.tar.gz"]])
def test_the_cli_names_the_problem_without_the_password(tmp_path: Path, case: str,
                                                        command: list[str]):
    url, problem = MALFORMED[case]
    done = run_cli(*command, env=_env(tmp_path, url))
    assert done.returncode == 1
    assert PASSWORD not in done.stdout + done.stderr
    last = done.stderr.splitlines()[-1]
    assert "DATABASE_URL is not a valid PostgreSQL URL" in last and problem in last, done.stderr
    if "--debug" not in command:
        assert done.stderr.count("\n") == 1 and done.stdout == ""


@pytest.mark.parametrize("case", list(MALFORMED))
def test_the_dagster_event_log_names_the_problem_without_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str):
    url, problem = MALFORMED[case]
    for key, value in _env(tmp_path, url).items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.from_config(os.environ["DAGSTER_HOME"]) as instance:
        result = run_backup_job(instance)
        assert not result.success
        logs = instance.all_logs(result.run_id)
    assert logs
    assert not [e for e in logs if PASSWORD in (e.message or "") + str(e.dagster_event)]
    [failure] = result.get_step_failure_events()
    error = failure.event_specific_data.error
    while error.cause is not None:
        error = error.cause
    assert problem in error.message and "\n" not in error.message.strip()


def test_redact_keeps_what_is_not_the_password():
    url = "postgresql://app:hunter2x@db.example:5432/app?sslmode=bogus"
    text = 'invalid sslmode value: "bogus" (user "app", password "hunter2x")'
    assert redact(text, url) == 'invalid sslmode value: "bogus" (user "app", password "***")'
    assert redact('unexpected spaces found in "ss w@h"', "postgresql://u:p@ss w@h/d") == \
        'unexpected spaces found in "***" (in the password)'
    assert redact("no password here", "postgresql://app@db/app") == "no password here"
