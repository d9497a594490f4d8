-- The databases a restore made or renamed beside the live one (<live>_restore_<id>,
-- <live>_old_<id>), recorded before it creates or renames them: a later restore drops only
-- what is recorded here, never a database that merely looks like one of ours.

CREATE TABLE backup.restore_databases (
    name         text PRIMARY KEY,
    restore_id   uuid NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
