-- Restore drills: a failed drill_job run is notified like a failed backup (a drill that
-- passed is only recorded as skipped: its result is the restore_drill check).
ALTER TABLE backup.run_notifications DROP CONSTRAINT IF EXISTS run_notifications_kind_check;
ALTER TABLE backup.run_notifications ADD CONSTRAINT run_notifications_kind_check
    CHECK (kind IN ('backup_success', 'backup_failure', 'restore_success', 'restore_failure',
                    'drill_success', 'drill_failure'));
