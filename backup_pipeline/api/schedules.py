"""Schedule operations: list, create, update, delete, toggle.

Values are validated by `backup_pipeline.scheduling.catalog`, the same rules as the CLI; the
models here only give the OpenAPI document its types.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field, field_validator, model_validator

from backup_pipeline.api.deps import Config
from backup_pipeline.api.models import StrictBody, no_nul
from backup_pipeline.scheduling import catalog

router = APIRouter(prefix="/api/admin/backups/schedules", tags=["schedules"])

Frequency = Literal[tuple(catalog.FREQUENCIES)]  # type: ignore[valid-type]
NOT_FOUND = {404: {"description": "Unknown schedule"}}


class Schedule(BaseModel):
    id: str
    name: str
    frequency: str
    cron: str
    retention_count: int
    is_enabled: bool
    last_run_at: str | None = None
    last_backup_id: str | None = None
    created_at: str
    updated_at: str
    completed_backups: int | None = Field(
        default=None, description="Completed backups this schedule keeps (in the list only).")


class ScheduleList(BaseModel):
    items: list[Schedule]
    total: int


class NewSchedule(StrictBody):
    name: str = Field(description=f"Unique, 1 to {catalog.MAX_NAME} characters.")
    frequency: Frequency
    retention_count: int = Field(ge=1, le=catalog.MAX_RETENTION,
                                 description="Completed backups of this schedule to keep.")
    is_enabled: bool = True

    _no_nul = field_validator("name")(no_nul)


class ScheduleChanges(StrictBody):
    name: str | None = None
    frequency: Frequency | None = None
    retention_count: int | None = Field(default=None, ge=1, le=catalog.MAX_RETENTION)
    is_enabled: bool | None = None

    _no_nul = field_validator("name")(no_nul)

    @model_validator(mode="after")
    def _something(self) -> ScheduleChanges:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("nothing to update: give name, frequency, retention_count or "
                             "is_enabled")
        return self


class ToggleBody(StrictBody):
    is_enabled: bool | None = Field(
        default=None, description="The state to set; without it the state is flipped.")


class ScheduleDeleted(BaseModel):
    deleted: str
    name: str
    backups_kept: int = Field(description="Its backups stay, no longer subject to retention.")


@router.get("", response_model=ScheduleList, summary="List schedules")
def list_schedules(config: Config) -> dict[str, Any]:
    rows = catalog.list_all(config.settings.database_url)
    return {"items": rows, "total": len(rows)}


@router.post("", status_code=201, response_model=Schedule, summary="Create schedule")
def create_schedule(body: NewSchedule, config: Config) -> dict[str, Any]:
    """A duplicate name is refused (422) and nothing is written."""
    return catalog.create(config.settings.database_url, name=body.name,
                          frequency=body.frequency, retention=body.retention_count,
                          enabled=body.is_enabled)


@router.put("/{schedule_id}", response_model=Schedule, summary="Update schedule",
            responses=NOT_FOUND)
def update_schedule(schedule_id: str, body: ScheduleChanges, config: Config) -> dict[str, Any]:
    """Changes only the fields given."""
    return catalog.update(config.settings.database_url, schedule_id, name=body.name,
                          frequency=body.frequency, retention=body.retention_count,
                          enabled=body.is_enabled)


@router.delete("/{schedule_id}", response_model=ScheduleDeleted, summary="Delete schedule",
               responses=NOT_FOUND)
def delete_schedule(schedule_id: str, config: Config) -> dict[str, Any]:
    return catalog.delete(config.settings.database_url, schedule_id)


@router.patch("/{schedule_id}/toggle", response_model=Schedule, summary="Enable/disable",
              responses=NOT_FOUND)
def toggle_schedule(schedule_id: str, config: Config,
                    body: Annotated[ToggleBody | None, Body()] = None) -> dict[str, Any]:
    """Flips the schedule on or off; with `is_enabled` sets that state (idempotent)."""
    if body is not None and body.is_enabled is not None:
        return catalog.update(config.settings.database_url, schedule_id,
                              enabled=body.is_enabled)
    return catalog.toggle(config.settings.database_url, schedule_id)
