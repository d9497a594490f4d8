-- Offsite copies: one row per backup copied (or to be copied) to S3-compatible storage.
-- No foreign key to backup_history: a copy under Object Lock outlives its backup, and the row
-- is how the retention sweep knows to delete it once its retain-until has passed.

CREATE TABLE backup.offsite_copies (
    backup_id          uuid PRIMARY KEY,
    bucket             text NOT NULL,
    object_key         text NOT NULL,
    version_id         text,
    state              text NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'copied', 'failed')),
    encrypted          boolean NOT NULL DEFAULT true,
    bytes              bigint,
    object_sha256      text,
    archive_sha256     text,
    attempts           integer NOT NULL DEFAULT 0,
    last_error         text,
    next_attempt_at    timestamptz,
    -- the first failure since the last success: one failure mail per episode
    failing_since      timestamptz,
    copied_at          timestamptz,
    retain_until       timestamptz,
    -- set when the backup was deleted while its copy could not be (locked, storage down)
    backup_deleted_at  timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX offsite_copies_due_idx ON backup.offsite_copies (next_attempt_at)
    WHERE state <> 'copied' AND backup_deleted_at IS NULL;
CREATE INDEX offsite_copies_deleted_idx ON backup.offsite_copies (retain_until)
    WHERE backup_deleted_at IS NOT NULL;
