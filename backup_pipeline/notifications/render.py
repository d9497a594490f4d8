"""The text of notification mails: a short subject and a plain-text body of aligned fields."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from backup_pipeline.notifications.facts import BackupFacts, FinishedRun, RestoreFacts
from backup_pipeline.progress import human_bytes

DEFAULT_WEBSERVER_URL = "http://localhost:3000"


@dataclass(frozen=True)
class Email:
    subject: str
    body: str


def run_url(webserver_url: str | None, run_id: str) -> str:
    base = (webserver_url or "").strip() or DEFAULT_WEBSERVER_URL
    return f"{base.rstrip('/')}/runs/{run_id}"


def _size(n: Any) -> str:
    return f"{human_bytes(n)} ({n:,} bytes)" if isinstance(n, int) else "unknown"


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "unknown"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value) if value else "unknown"


def _fields(pairs: list[tuple[str, Any]]) -> str:
    shown = [(k, v) for k, v in pairs if v is not None]
    width = max(len(k) for k, _ in shown) + 1
    return "\n".join(f"{(k + ':').ljust(width)}  {v}" for k, v in shown)


def _backup_name(row: dict[str, Any] | None, backup_id: str | None) -> str:
    if row is None:
        return f"backup {backup_id} (no longer in the catalog)" if backup_id else "unknown"
    name = row.get("file_name") or f"backup {row['id']} ({row.get('status')})"
    return f"{name} ({row['backup_type']}, started {_when(row.get('started_at'))}, id {row['id']})"


def backup_email(run: FinishedRun, facts: BackupFacts, *, database: str, url: str) -> Email:
    row = facts.row or {}
    if run.succeeded:
        subject = f"Backup succeeded: {row.get('file_name')} ({database})"
        body = _fields([
            ("Result", "backup completed"),
            ("Database", database),
            ("Trigger", facts.trigger),
            ("Archive", row.get("file_name")),
            ("Size", _size(row.get("size_bytes"))),
            ("Duration", _duration(row.get("duration_seconds"))),
            ("Documents", row.get("document_count")),
            ("Database dump", _size(row.get("database_bytes"))),
            ("Finished", _when(row.get("completed_at"))),
            ("Backup id", row.get("id")),
            ("Run", url),
        ])
    else:
        error = row.get("error_message") or run.error or "the run failed (no error recorded)"
        subject = f"Backup FAILED ({database}): {_short(error)}"
        body = _fields([
            ("Result", "the run failed after the backup was completed (the archive is kept)"
             if row.get("status") == "completed" else "backup failed, no archive was kept"),
            ("Database", database),
            ("Trigger", facts.trigger),
            ("Failed step", run.failed_step or "unknown (the run failed outside its steps)"),
            ("Error", error),
            ("Started", _when(row.get("started_at")) if row else None),
            ("Backup id", row.get("id")),
            ("Run", url),
        ])
    return Email(subject, body + "\n")


def restore_email(run: FinishedRun, facts: RestoreFacts, *, database: str, url: str) -> Email:
    restored = _backup_name(facts.backup, facts.backup_id)
    safety = _backup_name(facts.safety, facts.safety_backup_id) if facts.safety_backup_id \
        else "none recorded"
    name = (facts.backup or {}).get("file_name") or facts.backup_id or "unknown backup"
    if run.succeeded:
        subject = f"Restore succeeded: {name} ({database})"
        body = _fields([
            ("Result", "restore completed: database and documents replaced"),
            ("Database", database),
            ("Backup restored", restored),
            ("Safety backup", safety),
            ("Run", url),
        ])
    else:
        step = facts.step if facts.error and facts.step else run.failed_step or facts.step
        error = facts.error or run.error or "the run failed (no error recorded)"
        subject = f"Restore FAILED ({database}): {_short(error)}"
        body = _fields([
            ("Result", "restore failed"),
            ("Database", database),
            ("Backup", restored),
            ("Safety backup", safety),
            ("Failed step", step or "unknown (the run failed outside its steps)"),
            ("Error", error),
            ("Run", url),
        ])
    return Email(subject, body + "\n")


def drill_email(run: FinishedRun, backup: dict[str, Any] | None, *, database: str,
                url: str) -> Email:
    """A failed restore drill: the backup may not restore as it was made."""
    error = run.error or "the run failed (no error recorded)"
    return Email(f"Restore drill FAILED ({database}): {_short(error)}", _fields([
        ("Result", "restore drill failed: the backup did not restore into a scratch database "
                   "as its manifest says (live data untouched)"),
        ("Database", database),
        ("Backup", _backup_name(backup, None) if backup else "the newest completed backup"),
        ("Error", error),
        ("Run", url),
    ]) + "\n")


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def message_id(dedupe_key: str, sender: str) -> str:
    """The same Message-ID on every attempt, so a receiving system can drop a duplicate."""
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "backup-pipeline.invalid"
    return f"<{digest}.backup-pipeline@{domain}>"


def build_message(*, sender: str, recipient: str, subject: str, body: str, dedupe_key: str,
                  created_at: datetime | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = format_datetime(created_at) if created_at else format_datetime(
        datetime.now().astimezone())
    msg["Message-ID"] = message_id(dedupe_key, sender)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
    msg.set_content(body, cte="quoted-printable")
    return msg
