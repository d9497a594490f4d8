-- Email notifications: one decision per finished run and kind, and an outbox of messages.
-- A message is queued in the same transaction as its run's decision, so a run is mailed about
-- at most once, and a failed send is retried from here (a Dagster sensor's cursor moves on).

CREATE TABLE backup.run_notifications (
    dagster_run_id  text NOT NULL,
    kind            text NOT NULL
                    CHECK (kind IN ('backup_success', 'backup_failure',
                                    'restore_success', 'restore_failure')),
    outcome         text NOT NULL CHECK (outcome IN ('queued', 'skipped')),
    reason          text NOT NULL,
    decided_by      text NOT NULL,
    decided_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dagster_run_id, kind)
);

CREATE TABLE backup.email_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key       text NOT NULL UNIQUE,
    dagster_run_id   text,
    kind             text NOT NULL,
    recipient        text NOT NULL,
    subject          text NOT NULL,
    body             text NOT NULL,
    -- pending: waiting for (another) attempt; sending: handed to the SMTP server, reply awaited;
    -- sent: accepted by the server; failed: given up (bound reached, refused, or outcome unknown)
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claim_token      uuid,
    claimed_until    timestamptz,
    last_error       text,
    sent_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX email_outbox_due_idx ON backup.email_outbox (next_attempt_at, id)
    WHERE state = 'pending';
CREATE INDEX email_outbox_run_idx ON backup.email_outbox (dagster_run_id);
