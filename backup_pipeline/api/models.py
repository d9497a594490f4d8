"""Request and response bodies shared by the route modules (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

BackupType = Literal["manual", "scheduled", "safety", "uploaded"]
BackupStatus = Literal["pending", "in_progress", "completed", "failed"]


class StrictBody(BaseModel):
    """Unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def no_nul(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; refuse it here rather than fail inside a run."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class BackupRecord(BaseModel):
    id: str
    backup_type: BackupType | None = None
    status: BackupStatus
    trigger: str | None = None
    schedule_id: str | None = None
    note: str | None = None
    file_name: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    database_bytes: int | None = None
    document_count: int | None = None
    documents_bytes: int | None = None
    format_version: int | None = None
    server_version: str | None = None
    pg_dump_version: str | None = None
    dagster_run_id: str | None = None
    error_message: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_seconds: float | None = None
    created_at: str | None = None


class OffsiteState(BaseModel):
    key: str
    state: Literal["pending", "copied", "failed"]
    bytes: int | None = None
    copied_at: str | None = None
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: str | None = None
    retain_until: str | None = None
    object_sha256: str | None = None
    archive_sha256: str | None = None
    bucket: str | None = None
    encrypted: bool | None = None


class BackupDetails(BackupRecord):
    offsite: OffsiteState | None = Field(
        default=None, description="The offsite copy; null when the backup has none.")
    file_exists: bool = False
    manifest: dict[str, Any] | None = None
    manifest_error: str | None = None
    run_status: str | None = Field(
        default=None, description="The Dagster run's status, for backups not yet ended.")


class BackupPage(BaseModel):
    items: list[BackupRecord]
    total: int
    page: int
    page_size: int


class CreateBackup(StrictBody):
    note: str | None = Field(default=None, max_length=1000,
                             description="Free text kept with the backup.")

    _no_nul = field_validator("note")(no_nul)


class Launched(BaseModel):
    run_id: str = Field(description="The Dagster run's id.")
    status: str = "pending"
    status_url: str


class BackupLaunched(Launched):
    backup_id: str


class OffsitePushLaunched(BackupLaunched):
    pass


class Deleted(BaseModel):
    deleted: str
    file_name: str | None = None
    file_removed: bool
    offsite: dict[str, Any] | None = Field(
        default=None, description="What became of the offsite copy (removed, or kept and why).")
