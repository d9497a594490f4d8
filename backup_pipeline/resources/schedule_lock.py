"""The scheduled-backup lock and slot claim of one run (REDIS_URL, or a single-host lock)."""

import math
import os

import dagster as dg
from pydantic import Field, PrivateAttr

from backup_pipeline.errors import ConfigError
from backup_pipeline.scheduling import guard
from backup_pipeline.scheduling.lock import DEFAULT_TTL_SECONDS
from backup_pipeline.settings import Settings


class ScheduleLockResource(dg.ConfigurableResource):
    """Unset fields fall back to the environment at run time: REDIS_URL (unset: a file lock in
    BACKUP_DIR/.locks, for a single host) and BACKUP_LOCK_TTL_SECONDS (default 300).

    Whatever a run acquired is released when the run ends, however it ends."""

    redis_url: str | None = Field(default=None, description="Default: $REDIS_URL.")
    ttl_seconds: float | None = Field(
        default=None, description="Lock and claim TTL. Default: $BACKUP_LOCK_TTL_SECONDS, 300."
    )
    _held: list = PrivateAttr(default_factory=list)

    def resolved_redis_url(self) -> str | None:
        return self.redis_url or os.environ.get("REDIS_URL", "").strip() or None

    def resolved_ttl(self) -> float:
        raw = self.ttl_seconds
        if raw is None:
            text = os.environ.get("BACKUP_LOCK_TTL_SECONDS", "").strip()
            try:
                raw = float(text) if text else DEFAULT_TTL_SECONDS
            except ValueError:
                raise ConfigError(f"BACKUP_LOCK_TTL_SECONDS={text!r} is not a number") from None
        if not math.isfinite(raw) or raw <= 0:
            raise ConfigError(f"the lock TTL must be a number of seconds above 0, not {raw}")
        return raw

    def acquire(self, settings: Settings, *, schedule_id: str | None, slot_time: str | None,
                run_id: str) -> guard.SlotGuard | guard.Skipped:
        if not schedule_id or not slot_time:
            raise ConfigError("a scheduled backup needs schedule_id and slot_time in its config "
                              "(backup schedules set both)")
        outcome = guard.acquire(settings, schedule_id=schedule_id, slot=slot_time,
                                run_id=run_id, redis_url=self.resolved_redis_url(),
                                ttl_seconds=self.resolved_ttl())
        if isinstance(outcome, guard.SlotGuard):
            self._held.append(outcome)
        return outcome

    def current(self) -> guard.SlotGuard | None:
        """The guard this run holds, if it is a scheduled backup that got one."""
        return self._held[-1] if self._held else None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._held = []  # per run, never shared with another run's copy of the resource

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        while self._held:
            self._held.pop().close()
