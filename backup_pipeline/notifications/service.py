"""Deciding what to mail about a finished run, and delivering the outbox.

`decide` records one decision per (run, kind) in `backup.run_notifications` and queues the
messages in the same transaction, so a run is mailed about at most once however often (and by
however many sensors) it is looked at. `deliver` sends what is due from the outbox.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import psycopg
from psycopg.rows import dict_row

from backup_pipeline.catalog.history import check_migrated
from backup_pipeline.errors import ConfigError
from backup_pipeline.notifications import facts as run_facts
from backup_pipeline.notifications import outbox
from backup_pipeline.notifications import settings as notification_settings
from backup_pipeline.notifications import urls as notification_urls
from backup_pipeline.notifications.facts import BACKUP_JOB, FinishedRun
from backup_pipeline.notifications.mailer import MailError, SmtpConfig, SmtpSession
from backup_pipeline.notifications.render import (
    Email,
    backup_email,
    build_message,
    drill_email,
    restore_email,
    run_url,
)
from backup_pipeline.postgres import connect, database_name


@dataclass(frozen=True)
class Decision:
    run_id: str
    kind: str
    outcome: str  # "queued" or "skipped"
    reason: str
    decided_by: str
    new: bool  # made by this call (False: it was decided before)
    recipients: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()  # notification URLs messages were queued for

    def describe(self) -> str:
        earlier = "" if self.new else f" (decided earlier by {self.decided_by})"
        return f"{self.kind.replace('_', ' ')} of run {self.run_id}: {self.reason}{earlier}"


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    expired: int = 0
    errors: list[str] = field(default_factory=list)
    waiting: int = 0  # after this delivery: messages left for a later attempt
    waiting_error: str | None = None

    def describe(self) -> str:
        parts = [f"sent {self.sent}"]
        if self.retrying:
            parts.append(f"{self.retrying} to retry")
        if self.failed or self.expired:
            parts.append(f"{self.failed + self.expired} given up")
        if self.waiting:
            parts.append(f"{self.waiting} waiting")
        text = ", ".join(parts)
        error = self.errors[-1] if self.errors else self.waiting_error
        return f"{text} (last error: {error})" if error else text


def check_outbox(conn: psycopg.Connection) -> None:
    check_migrated(conn)
    for table, migration in (("email_outbox", "004_email_outbox"),
                             ("freshness_breaches", "009_freshness_state")):
        if conn.execute("SELECT to_regclass(%s)", (f"backup.{table}",)).fetchone()[0] is None:
            raise ConfigError(f"the catalog needs migration {migration} for notifications: "
                              "run 'backup-pipeline migrate'")


def _existing(conn: psycopg.Connection, run_id: str, kind: str) -> Decision | None:
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT outcome, reason, decided_by FROM backup.run_notifications"
        " WHERE dagster_run_id = %s AND kind = %s", (run_id, kind),
    ).fetchone()
    return Decision(run_id, kind, new=False, **row) if row else None


def decided_runs(database_url: str, run_ids: list[str]) -> set[tuple[str, str]]:
    """(run id, kind) pairs among run_ids that already have a decision."""
    if not run_ids:
        return set()
    with connect(database_url) as conn:
        check_outbox(conn)
        rows = conn.execute(
            "SELECT dagster_run_id, kind FROM backup.run_notifications"
            " WHERE dagster_run_id = ANY(%s)", (run_ids,),
        ).fetchall()
    return {(r, k) for r, k in rows}


def _why_not(run: FinishedRun, s: notification_settings.NotificationSettings,
             mail_configured: bool) -> str | None:
    if not run.succeeded:
        return why_no_failure_notice(s, mail_configured)
    if not s.email_enabled:
        return "email notifications are off (setting email_enabled=false)"
    if run.job_name == run_facts.DRILL_JOB:
        return "a restore drill that passed is recorded as its check, not mailed"
    if not s.notify_on_success:
        return "success mails are off (setting notify_on_success=false)"
    return no_targets(s, mail_configured)


def why_no_failure_notice(s: notification_settings.NotificationSettings,
                          mail_configured: bool) -> str | None:
    """Why a failure is notified to no one (failed runs, failed offsite copies), or None."""
    if not s.email_enabled:
        return "email notifications are off (setting email_enabled=false)"
    if not s.notify_on_failure:
        return "failure mails are off (setting notify_on_failure=false)"
    return no_targets(s, mail_configured)


def no_targets(s: notification_settings.NotificationSettings,
               mail_configured: bool) -> str | None:
    """Why nothing can be sent to anyone, or None."""
    if s.notify_urls:
        return None
    if not s.email_recipients:
        return ("no recipients are set: backup-pipeline settings set "
                "email_recipients=admin@example.com")
    if not mail_configured:
        return "SMTP_HOST is not set, so no mail is sent"
    return None


def targets(s: notification_settings.NotificationSettings,
            mail_configured: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(mail recipients, notification URLs) a message goes to."""
    return (s.email_recipients if mail_configured else ()), s.notify_urls


def queued_for(recipients: tuple[str, ...], urls: tuple[str, ...]) -> str:
    """The decision's reason, URLs shown as scheme and host only."""
    parts = [f"mail queued for {', '.join(recipients)}"] if recipients else []
    if urls:
        parts.append("notification queued for "
                     + ", ".join(notification_urls.redact(u) for u in urls))
    return "; ".join(parts)


def queue_all(conn: psycopg.Connection, *, run_id: str | None, kind: str, email: Email,
              recipients: tuple[str, ...], urls: tuple[str, ...],
              event: str | None = None) -> None:
    """One outbox message per mail recipient and per notification URL."""
    for recipient in recipients:
        outbox.enqueue(conn, run_id=run_id, kind=kind, recipient=recipient,
                       subject=email.subject, body=email.body, event=event)
    for url in urls:
        outbox.enqueue(conn, run_id=run_id, kind=kind, recipient=url, subject=email.subject,
                       body=email.body, channel=outbox.APPRISE, event=event)


def _compose(conn: psycopg.Connection, run: FinishedRun, *, database: str,
             url: str) -> Email | str:
    """The mail for a run, or why there is none."""
    if run.job_name == BACKUP_JOB:
        found = run_facts.backup_facts(conn, run)
        if run.succeeded and not found.made_backup:
            why = run.skip_reason or "a scheduled run that did not get its slot or lock"
            return f"the run made no backup ({why})"
        return backup_email(run, found, database=database, url=url)
    if run.job_name == run_facts.DRILL_JOB:
        return drill_email(run, run_facts.drilled_backup(conn, run), database=database,
                           url=url)
    found = run_facts.restore_facts(conn, run)
    if found.dry_run:
        return "a restore preview (dry run) changes nothing"
    return restore_email(run, found, database=database, url=url)


def decide(database_url: str, run: FinishedRun, *, mail_configured: bool,
           webserver_url: str | None, decided_by: str) -> Decision:
    """Decide once whether and to whom to mail about a finished run, and queue the mails."""
    kind = run.kind
    with connect(database_url) as conn:
        check_outbox(conn)
        earlier = _existing(conn, run.run_id, kind)
        if earlier is not None:
            return earlier
        current = notification_settings.load(database_url)
        composed = _why_not(run, current, mail_configured) or _compose(
            conn, run, database=database_name(database_url),
            url=run_url(webserver_url, run.run_id))
        email = composed if isinstance(composed, Email) else None
        recipients, urls = targets(current, mail_configured) if email is not None else ((), ())
        outcome = "queued" if email is not None else "skipped"
        reason = queued_for(recipients, urls) if email is not None else composed
        with conn.transaction():
            inserted = conn.execute(
                "INSERT INTO backup.run_notifications"
                " (dagster_run_id, kind, outcome, reason, decided_by)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                (run.run_id, kind, outcome, reason, decided_by),
            ).fetchone()
            if inserted is None:  # another sensor decided in the meantime
                return _existing(conn, run.run_id, kind)
            queue_all(conn, run_id=run.run_id, kind=kind, email=email,
                      recipients=recipients, urls=urls)
    return Decision(run.run_id, kind, outcome, reason, decided_by, new=True,
                    recipients=tuple(recipients), urls=tuple(urls))


def deliver(database_url: str, config: SmtpConfig, policy: outbox.Policy | None = None, *,
            limit: int = 20, ssl_context: ssl.SSLContext | None = None) -> DeliveryReport:
    """Send what is due, one SMTP connection for the batch. Never raises for SMTP trouble:
    each failure is recorded on its message and retried later."""
    policy = policy or outbox.Policy()
    report = DeliveryReport()
    with connect(database_url, autocommit=True) as conn:
        check_outbox(conn)
        report.expired = outbox.expire(conn, policy)
        batch = outbox.claim(conn, policy, limit)
        if batch:
            _send_batch(conn, config, batch, policy, report, ssl_context)
        report.waiting, report.waiting_error = outbox.waiting(conn)
    return report


def _send_batch(conn: psycopg.Connection, config: SmtpConfig, batch: list[outbox.Message],
                policy: outbox.Policy, report: DeliveryReport,
                ssl_context: ssl.SSLContext | None) -> None:
    session = SmtpSession(config, ssl_context)
    try:
        session.open()
    except MailError as exc:
        for message in batch:
            _record_failure(conn, message, exc, policy, report)
        return
    try:
        for message in batch:
            _send_one(conn, session, config, message, policy, report)
    finally:
        session.close()


def _send_one(conn: psycopg.Connection, session: SmtpSession, config: SmtpConfig,
              message: outbox.Message, policy: outbox.Policy, report: DeliveryReport) -> None:
    email = build_message(sender=config.sender, recipient=message.recipient,
                          subject=message.subject, body=message.body,
                          dedupe_key=message.dedupe_key, created_at=message.created_at)
    try:
        handed_over = session.send(email, on_handover=lambda: outbox.mark_sending(conn, message))
    except MailError as exc:
        _record_failure(conn, message, exc, policy, report)
        return
    if handed_over:
        outbox.mark_sent(conn, message)
        report.sent += 1


def _record_failure(conn: psycopg.Connection, message: outbox.Message, exc: MailError,
                    policy: outbox.Policy, report: DeliveryReport) -> None:
    state = outbox.mark_failed_attempt(conn, message, str(exc), policy, permanent=exc.permanent)
    if state == "failed":
        report.failed += 1
    else:
        report.retrying += 1
    report.errors.append(str(exc))


def deliver_urls(database_url: str, policy: outbox.Policy | None = None, *,
                 limit: int = 20) -> DeliveryReport:
    """Send what is due to notification URLs (channel `apprise`), with the mail's guarantees:
    `sending` is recorded before the request and `sent` after the target confirmed it; a
    target that is down keeps the message for a later attempt. Never raises for delivery
    trouble."""
    policy = policy or outbox.Policy()
    report = DeliveryReport()
    with connect(database_url, autocommit=True) as conn:
        check_outbox(conn)
        report.expired = outbox.expire(conn, policy)
        for message in outbox.claim(conn, policy, limit, channel=outbox.APPRISE):
            if not outbox.mark_sending(conn, message):
                continue  # the lease ran out: another sender may have it now
            try:
                notification_urls.send(message.recipient, title=message.subject,
                                       body=message.body, kind=message.kind)
            except notification_urls.NotifyError as exc:
                state = outbox.mark_failed_attempt(conn, message, str(exc), policy)
                report.failed += state == "failed"
                report.retrying += state != "failed"
                report.errors.append(str(exc))
                continue
            outbox.mark_sent(conn, message)
            report.sent += 1
        report.waiting, report.waiting_error = outbox.waiting(conn)
    return report
