"""The failure mail of an offsite copy, queued in the notification outbox.

A copy that fails does not fail its backup run, so no run-failure sensor mails about it; the
copy queues its own message in `backup.email_outbox` instead, once per failure episode (the
first failure since the last success), to the same mail recipients and notification URLs as
failure mails, under the same settings (`email_enabled`, `notify_on_failure`). The outbox
sensor delivers it.
"""

from __future__ import annotations

from typing import Any

from backup_pipeline.notifications import service
from backup_pipeline.notifications import settings as notification_settings
from backup_pipeline.notifications.render import Email, run_url
from backup_pipeline.postgres import connect, database_name

KIND = "offsite_failure"


def body(copy: dict[str, Any], backup: dict[str, Any], target: str, run_link: str | None) -> str:
    pairs = [
        ("Result", "the offsite copy failed; the local backup is complete and kept"),
        ("Backup", f"{backup.get('file_name')} ({backup.get('backup_type')}, id {backup['id']})"),
        ("Target", f"{target}/{copy['key'].rpartition('/')[2]}"),
        ("Error", copy.get("last_error")),
        ("Attempts", copy.get("attempts")),
        ("Next attempt", f"{copy.get('next_attempt_at')} (by offsite_catch_up_sensor, or now "
                         f"with: backup-pipeline offsite push {backup['id']})"),
        ("Run", run_link),
    ]
    shown = [(k, v) for k, v in pairs if v is not None]
    width = max(len(k) for k, _ in shown) + 1
    return "\n".join(f"{(k + ':').ljust(width)}  {v}" for k, v in shown) + "\n"


def queue_failure(database_url: str, copy: dict[str, Any], backup: dict[str, Any], *,
                  target: str, mail_configured: bool, run_id: str | None,
                  webserver_url: str | None) -> str:
    """Queue the mail for every recipient; returns what was done, for the step's log."""
    current = notification_settings.load(database_url)
    reason = service.why_no_failure_notice(current, mail_configured)
    if reason is not None:
        return f"no failure mail: {reason}"
    recipients, urls = service.targets(current, mail_configured)
    database = database_name(database_url)
    subject = f"Offsite copy FAILED ({database}): {backup.get('file_name')}"
    text = body(copy, backup, target, run_url(webserver_url, run_id) if run_id else None)
    episode = f"offsite:{backup['id']}:{copy.get('failing_since')}"  # one notice per episode
    with connect(database_url, autocommit=True) as conn:
        service.queue_all(conn, run_id=episode, kind=KIND, email=Email(subject, text),
                          recipients=recipients, urls=urls)
    return service.queued_for(recipients, urls)
