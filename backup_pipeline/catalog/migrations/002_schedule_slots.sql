-- Scheduled backups: one claim per (schedule, slot time), the real guard against duplicates.
--
-- A run claims its slot before it makes anything. The claim is a lease (lease_until, renewed
-- while the backup runs): a run that crashed loses it when the lease ends, and another run may
-- then take the slot over unless it was completed. owner_token fences the completion, so a run
-- that was paused past its lease can never complete a slot someone else took over.

ALTER TABLE backup.backup_history ADD COLUMN slot_time timestamptz;

-- Belt and braces: whatever the claims say, one completed backup per schedule slot.
CREATE UNIQUE INDEX backup_history_one_per_slot
    ON backup.backup_history (schedule_id, slot_time)
    WHERE status = 'completed' AND slot_time IS NOT NULL;

CREATE TABLE backup.schedule_slots (
    schedule_id     uuid NOT NULL REFERENCES backup.backup_schedules (id) ON DELETE CASCADE,
    slot_time       timestamptz NOT NULL,
    state           text NOT NULL CHECK (state IN ('claimed', 'completed', 'failed')),
    owner_token     text NOT NULL,
    dagster_run_id  text,
    backup_id       uuid REFERENCES backup.backup_history (id) ON DELETE SET NULL,
    lease_until     timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 1,
    error_message   text,
    claimed_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, slot_time)
);
