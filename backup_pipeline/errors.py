"""Errors that carry a one-line, operator-facing message."""


class BackupPipelineError(Exception):
    """An expected failure: its message is shown to the operator as it is, on one line."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())


class ConfigError(BackupPipelineError):
    """The environment or the command line is wrong."""


class BackupError(BackupPipelineError):
    """A backup could not be made."""


class ArchiveError(BackupPipelineError):
    """An archive is unreadable, incomplete or does not match its manifest."""


class NotFoundError(BackupPipelineError):
    """A catalog record does not exist."""


class ConflictError(BackupPipelineError):
    """The request clashes with what is going on (a backup still running, a restore under way)."""


class UnavailableError(ConfigError):
    """A service we depend on (the database, Dagster's webserver) does not answer."""


def error_text(error) -> str:
    """A Dagster SerializableErrorInfo's innermost cause, on one line, without its class name
    (here, not in the CLI, so the sensors use it without importing the command line)."""
    while error.cause is not None:
        error = error.cause
    message = error.message.strip()
    prefix = f"{error.cls_name}: "
    if error.cls_name and prefix in message:
        message = message.split(prefix, 1)[1]
    return " ".join(message.split())
