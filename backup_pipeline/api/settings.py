"""Settings: the global notification settings (`backup.backup_settings`).

Values are validated by `backup_pipeline.notifications.settings`, the same rules as
`backup-pipeline settings set`: all changes or, on any error, none.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from backup_pipeline.api.deps import Config
from backup_pipeline.api.models import StrictBody
from backup_pipeline.notifications import settings as notification_settings

router = APIRouter(prefix="/api/admin/backups/settings", tags=["settings"])


class NotificationSettings(BaseModel):
    email_enabled: bool
    email_recipients: list[str]
    notify_on_success: bool
    notify_on_failure: bool
    notify_urls: list[str] = Field(description="Apprise notification URLs, shown as scheme and "
                                   "host only (they carry tokens).")


class SettingsChanges(StrictBody):
    email_enabled: bool | None = None
    email_recipients: list[str] | str | None = Field(
        default=None, description="Addresses, as a list or comma-separated; empty for none.")
    notify_on_success: bool | None = None
    notify_on_failure: bool | None = None
    notify_urls: list[str] | str | None = Field(
        default=None, description="Apprise URLs, as a list or comma-separated; empty for none.")

    @model_validator(mode="after")
    def _something(self) -> SettingsChanges:
        if not self.model_fields_set:
            raise ValueError("nothing to set: give at least one of "
                             f"{', '.join(notification_settings.KEYS)}")
        return self


@router.get("", response_model=NotificationSettings, summary="Get settings")
def get_settings(config: Config) -> dict[str, Any]:
    return notification_settings.load(config.settings.database_url).public_json()


@router.put("", response_model=NotificationSettings, summary="Update settings")
def put_settings(body: SettingsChanges, config: Config) -> dict[str, Any]:
    """Sets the fields given, keeps the others; an invalid value (a malformed address) is
    refused with 422 and nothing changes."""
    changes = body.model_dump(exclude_unset=True)
    return notification_settings.update(config.settings.database_url, changes).public_json()
