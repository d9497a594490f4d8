"""Offsite copies in S3-compatible storage, age-encrypted: plain Python (no Dagster), used by
the backup_job step, the catch-up sensor's job, the CLI and the admin API."""
