"""Email notifications on backup and restore runs: settings, rendering, an outbox, SMTP.

Plain Python: the Dagster sensors in `backup_pipeline.sensors` only call into this package.
"""
