-- The seed's three tables, in schema "backup" of the application database.

CREATE TABLE backup.backup_schedules (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name             text NOT NULL UNIQUE CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    frequency        text NOT NULL CHECK (frequency IN ('hourly', 'daily', 'weekly', 'monthly')),
    retention_count  integer NOT NULL CHECK (retention_count >= 1),
    is_enabled       boolean NOT NULL DEFAULT true,
    last_run_at      timestamptz,
    last_backup_id   uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE backup.backup_history (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    backup_type       text NOT NULL CHECK (backup_type IN ('manual', 'scheduled', 'safety', 'uploaded')),
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'in_progress', 'completed', 'failed')),
    trigger           text NOT NULL,
    schedule_id       uuid REFERENCES backup.backup_schedules (id) ON DELETE SET NULL,
    note              text,
    file_name         text UNIQUE,
    size_bytes        bigint,
    sha256            text,
    database_bytes    bigint,
    document_count    integer,
    documents_bytes   bigint,
    format_version    integer,
    server_version    text,
    pg_dump_version   text,
    dagster_run_id    text,
    error_message     text,
    started_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    duration_seconds  double precision,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX backup_history_started_idx ON backup.backup_history (started_at DESC, id DESC);
CREATE INDEX backup_history_schedule_idx ON backup.backup_history (schedule_id, status, started_at DESC);

ALTER TABLE backup.backup_schedules
    ADD CONSTRAINT backup_schedules_last_backup_fk
    FOREIGN KEY (last_backup_id) REFERENCES backup.backup_history (id) ON DELETE SET NULL;

CREATE TABLE backup.backup_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
