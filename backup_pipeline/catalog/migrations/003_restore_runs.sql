-- One row per restore or restore preview (dry run): what it restores, how far it got, how it ended.
-- A row in state 'pending' or 'running' means its backup is in use (retention must keep it).

CREATE TABLE backup.restore_runs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    backup_id         uuid NOT NULL,
    safety_backup_id  uuid,
    dry_run           boolean NOT NULL DEFAULT true,
    scope             text NOT NULL DEFAULT 'both'
                      CHECK (scope IN ('database', 'documents', 'both')),
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'running', 'completed', 'failed')),
    step              text,
    trigger           text NOT NULL DEFAULT 'ui',
    dagster_run_id    text,
    error_message     text,
    warnings          jsonb NOT NULL DEFAULT '[]'::jsonb,
    preview           jsonb,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- Only one restore that changes data at a time (previews may run alongside).
CREATE UNIQUE INDEX restore_runs_one_active ON backup.restore_runs ((true))
    WHERE state IN ('pending', 'running') AND NOT dry_run;
CREATE INDEX restore_runs_started_idx ON backup.restore_runs (started_at DESC, id DESC);
CREATE INDEX restore_runs_in_use_idx ON backup.restore_runs (backup_id)
    WHERE state IN ('pending', 'running');
CREATE INDEX restore_runs_run_idx ON backup.restore_runs (dagster_run_id);
