"""The outbox `backup.email_outbox`: queued messages (mails, and Apprise notification URLs on
channel `apprise`), claimed by one sender at a time, retried
with exponential backoff until sent or a bound, and never sent twice.

States: `pending` -> (claimed under a lease, envelope accepted) -> `sending` -> `sent`.
A failed attempt goes back to `pending` with a later `next_attempt_at`, or to `failed` once the
bound is reached or the server refused the message for good. A sender that dies while a message
is `sending` may or may not have delivered it: such a message is marked `failed` ("outcome
unknown") and not resent, so that no one gets it twice. A sender that dies before that point
only holds a lease, which expires, and the message is tried again.

Functions take an autocommit connection: every state change is committed at once.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

UNKNOWN_OUTCOME = ("the sender stopped while handing the message to the SMTP server; the outcome "
                   "is unknown, so it is not resent (it must not arrive twice)")
EMAIL = "email"
APPRISE = "apprise"
CHANNELS = (EMAIL, APPRISE)


@dataclass(frozen=True)
class Policy:
    """Retry schedule: first retry after `first_retry_seconds`, doubling up to
    `max_retry_seconds`; give up after `max_attempts` (the defaults span about a day)."""

    first_retry_seconds: float = 60
    max_retry_seconds: float = 3600
    max_attempts: int = 30
    lease_seconds: float = 300

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        return min(self.first_retry_seconds * 2 ** max(attempts - 1, 0), self.max_retry_seconds)


@dataclass(frozen=True)
class Message:
    id: int
    dedupe_key: str
    dagster_run_id: str | None
    kind: str
    recipient: str
    subject: str
    body: str
    attempts: int
    claim_token: str
    created_at: datetime
    channel: str = EMAIL


def target_key(recipient: str, channel: str = EMAIL) -> str:
    """A mail address as it is (ignoring case); a URL by its digest, as it may carry a token."""
    if channel == EMAIL:
        return recipient.lower()
    return f"{channel}:{hashlib.sha256(recipient.encode()).hexdigest()[:32]}"


def dedupe_key(run_id: str, kind: str, recipient: str, channel: str = EMAIL) -> str:
    return f"{run_id}:{kind}:{target_key(recipient, channel)}"


def enqueue(conn: psycopg.Connection, *, run_id: str | None, kind: str, recipient: str,
            subject: str, body: str, channel: str = EMAIL, event: str | None = None) -> bool:
    """Queue one message; False when it was queued before (same run or `event`, kind and
    recipient). Messages about something other than a run name it in `event` instead."""
    key = dedupe_key(event or run_id, kind, recipient, channel)
    row = conn.execute(
        "INSERT INTO backup.email_outbox (dedupe_key, dagster_run_id, kind, recipient, subject,"
        " body, channel) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        (key, run_id, kind, recipient, subject, body, channel),
    ).fetchone()
    return row is not None


def expire(conn: psycopg.Connection, policy: Policy) -> int:
    """Give up on messages nobody may send any more: `sending` past its lease (the sender died
    mid-delivery) and `pending` ones whose attempts are used up. Returns how many."""
    unknown = conn.execute(
        "UPDATE backup.email_outbox SET state = 'failed', last_error = %s, claim_token = NULL,"
        " claimed_until = NULL WHERE state = 'sending' AND claimed_until < now()",
        (UNKNOWN_OUTCOME,),
    ).rowcount
    used_up = conn.execute(
        "UPDATE backup.email_outbox SET state = 'failed', claim_token = NULL,"
        " claimed_until = NULL, last_error = coalesce(last_error, 'no attempts left')"
        " WHERE state = 'pending' AND attempts >= %s"
        " AND (claimed_until IS NULL OR claimed_until < now())",
        (policy.max_attempts,),
    ).rowcount
    return unknown + used_up


def claim(conn: psycopg.Connection, policy: Policy, limit: int = 20,
          channel: str = EMAIL) -> list[Message]:
    """Take up to `limit` due messages of `channel` under a lease (counting this attempt).
    Concurrent senders get disjoint sets: rows locked by another claim are skipped."""
    token = str(uuid.uuid4())
    rows = conn.cursor(row_factory=dict_row).execute(
        "UPDATE backup.email_outbox o SET claim_token = %(token)s, attempts = o.attempts + 1,"
        " claimed_until = now() + make_interval(secs => %(lease)s)"
        " FROM (SELECT id FROM backup.email_outbox WHERE state = 'pending'"
        "       AND channel = %(channel)s AND next_attempt_at <= now() AND attempts < %(max)s"
        "       AND (claimed_until IS NULL OR claimed_until < now())"
        "       ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due"
        " WHERE o.id = due.id RETURNING o.id, o.dedupe_key, o.dagster_run_id, o.kind,"
        " o.recipient, o.subject, o.body, o.attempts, o.claim_token::text AS claim_token,"
        " o.created_at, o.channel",
        {"token": token, "lease": policy.lease_seconds, "max": policy.max_attempts,
         "limit": limit, "channel": channel},
    ).fetchall()
    return sorted((Message(**row) for row in rows), key=lambda m: m.id)


def mark_sending(conn: psycopg.Connection, message: Message) -> bool:
    """Just before DATA (or the request to a notification URL). False when the lease was lost
    (another sender may have it now)."""
    return conn.execute(
        "UPDATE backup.email_outbox SET state = 'sending' WHERE id = %s AND claim_token = %s"
        " AND state = 'pending' AND claimed_until > now()",
        (message.id, message.claim_token),
    ).rowcount == 1


def mark_sent(conn: psycopg.Connection, message: Message) -> None:
    conn.execute(
        "UPDATE backup.email_outbox SET state = 'sent', sent_at = now(), last_error = NULL,"
        " claim_token = NULL, claimed_until = NULL WHERE id = %s AND claim_token = %s",
        (message.id, message.claim_token),
    )


def mark_failed_attempt(conn: psycopg.Connection, message: Message, error: str, policy: Policy,
                        *, permanent: bool = False) -> str:
    """Back to `pending` after the policy's delay, or `failed` when refused for good or out of
    attempts. Returns the new state."""
    give_up = permanent or message.attempts >= policy.max_attempts
    state = "failed" if give_up else "pending"
    conn.execute(
        "UPDATE backup.email_outbox SET state = %s, last_error = %s, claim_token = NULL,"
        " claimed_until = NULL, next_attempt_at = now() + make_interval(secs => %s)"
        " WHERE id = %s AND claim_token = %s",
        (state, error[:2000], policy.delay(message.attempts), message.id, message.claim_token),
    )
    return state


def waiting(conn: psycopg.Connection) -> tuple[int, str | None]:
    """How many messages wait for another attempt, and the latest error among them."""
    count, error = conn.execute(
        "SELECT count(*), (array_agg(last_error ORDER BY next_attempt_at DESC)"
        " FILTER (WHERE last_error IS NOT NULL))[1]"
        " FROM backup.email_outbox WHERE state IN ('pending', 'sending')"
    ).fetchone()
    return count, error
