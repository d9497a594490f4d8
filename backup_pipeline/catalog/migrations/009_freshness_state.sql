-- Recoverability: late schedules and notification channels besides mail.

-- One row per breach: an enabled schedule whose newest completed backup is older than its
-- interval plus the grace (FRESHNESS_GRACE). Opened when first seen late, closed when the
-- schedule is fresh again or no longer enabled. At most one open breach per schedule (the
-- partial unique index), and the "late" and "recovered" notifications are queued in the same
-- transaction as the opening and the closing: one of each per breach, across sensor restarts
-- and concurrent evaluations. No foreign key: a deleted schedule's breach is closed, not lost.
CREATE TABLE backup.freshness_breaches (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id     uuid NOT NULL,
    schedule_name   text NOT NULL,
    frequency       text NOT NULL,
    last_backup_at  timestamptz,          -- the newest completed backup's start, if any
    late_since      timestamptz NOT NULL, -- when it became late
    opened_at       timestamptz NOT NULL DEFAULT now(),
    notified        boolean NOT NULL,     -- a "late" message was queued, so "recovered" is too
    closed_at       timestamptz,
    close_reason    text
);

CREATE UNIQUE INDEX freshness_breaches_open_idx ON backup.freshness_breaches (schedule_id)
    WHERE closed_at IS NULL;

-- The outbox carries every channel: 'email' (recipient: an address) or 'apprise' (recipient:
-- an Apprise notification URL from the setting notify_urls, which may carry a token).
ALTER TABLE backup.email_outbox
    ADD COLUMN channel text NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'apprise'));
