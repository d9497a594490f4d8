"""Errors of restores and imports (one line each, like every operator-facing error)."""

from backup_pipeline.errors import BackupPipelineError


class RestoreError(BackupPipelineError):
    """A restore or import could not be done; nothing was changed unless the message says so."""


class RestoreBusyError(RestoreError):
    """Another restore (or a backup) is running: the request is refused, nothing is changed."""
