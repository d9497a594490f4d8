-- Roles a restore created on the server: its temporary loader (a login role that loads an
-- archive the catalog did not make, dropped when the load is over) and the roles the dump
-- names that the server lacked (NOLOGIN, no password; kept once the restore completed).
-- A row outlives its role only when the restore died: the next restore drops what it names.

CREATE TABLE backup.restore_roles (
    role_name   text PRIMARY KEY,
    restore_id  uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('loader', 'created')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX restore_roles_restore_idx ON backup.restore_roles (restore_id);
