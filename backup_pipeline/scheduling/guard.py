"""What a scheduled backup holds while it runs: the schedule's lock and the slot's claim.

`acquire` takes the lock (the fast path), then claims the slot (the real guard); either one
refused means the run is skipped. While the backup runs, a thread renews both every TTL/3, so
a backup longer than the TTL keeps them and a crashed process loses them within the TTL.
Redis being unreachable is a warning, not a failure: the slot claim alone still guarantees one
backup per slot.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from datetime import datetime

from backup_pipeline.backup.service import ensure_private_dir
from backup_pipeline.postgres import one_line
from backup_pipeline.scheduling import slots
from backup_pipeline.scheduling.catalog import parse_id
from backup_pipeline.scheduling.lock import (
    FileLock,
    LockError,
    RedisLock,
    describe_redis,
    lock_key,
    redis_client,
)
from backup_pipeline.settings import Settings

LOCK_DIR = ".locks"


@dataclass(frozen=True)
class Skipped:
    """This run makes no backup; `reason` goes into the run's metadata."""

    reason: str
    warnings: list[str] = field(default_factory=list)


class SlotGuard:
    def __init__(self, settings: Settings, claim: slots.Claim, lock: RedisLock | FileLock | None,
                 ttl_seconds: float, warnings: list[str]):
        self.settings = settings
        self.claim = claim
        self.lock = lock
        self.ttl_seconds = ttl_seconds
        self.lost = threading.Event()
        self._warnings = list(warnings)
        self._warned: set[str] = set()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def warnings(self) -> list[str]:
        with self._mutex:
            return list(self._warnings)

    def _warn(self, kind: str, message: str) -> None:
        with self._mutex:
            if kind not in self._warned:
                self._warned.add(kind)
                self._warnings.append(message)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                        name=f"renew-{self.claim.schedule_id}")
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_seconds / 3):
            if not self.renew():
                return

    def _renew_lock(self) -> None:
        if self.lock is None:
            return
        what = self.lock.describe()
        try:
            if self.lock.renew():
                return
            if self.lock.acquire():
                self._warn("lock-retaken", f"{what} had expired while this backup ran and "
                                           "was taken again; the slot claim guarded the slot")
            else:
                self._warn("lock-lost", f"{what} expired while this backup ran and another "
                                        "run holds it now; the slot claim still guards the slot")
        except LockError as exc:
            self._warn("lock-unreachable", f"Redis became unreachable while this backup ran "
                                           f"({one_line(exc)}); the slot claim still guards "
                                           "the slot")

    def renew(self) -> bool:
        """Renew lock and claim now; False once the claim is lost (another run took the slot
        over after this one failed to renew in time)."""
        if self.lost.is_set():
            return False
        try:
            if not slots.renew(self.settings.database_url, self.claim, self.ttl_seconds):
                self.lost.set()
                return False
        except Exception as exc:  # the catalog briefly unreachable: retry at the next renewal
            self._warn("claim-renew", f"could not renew the slot claim ({one_line(exc)})")
        self._renew_lock()
        return True

    def attach(self, backup_id: str) -> bool:
        return slots.attach(self.settings.database_url, self.claim, backup_id)

    def _stop_renewing(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def completing(self) -> AbstractContextManager[slots.Fence]:
        """Stop renewing and lock the slot row for the completion (see slots.completing)."""
        self._stop_renewing()
        return slots.completing(self.settings.database_url, self.claim)

    def close(self, reason: str = "the run ended before the backup completed") -> None:
        """Release everything; a claim still open is marked failed so a retry may take it."""
        if self._closed:
            return
        self._closed = True
        self._stop_renewing()
        with suppress(Exception):
            slots.release(self.settings.database_url, self.claim, reason)
        if self.lock is not None:
            self.lock.close()


def _take_lock(settings: Settings, schedule_id: str, redis_url: str | None, ttl_seconds: float
               ) -> tuple[RedisLock | FileLock | None, str | None, list[str]]:
    """(lock or None, reason to skip or None, warnings)."""
    if not redis_url:
        ensure_private_dir(settings.backup_dir)
        lock = FileLock(settings.backup_dir / LOCK_DIR / f"schedule-{schedule_id}.lock")
        if lock.acquire():
            return lock, None, []
        return None, f"another run on this host holds {lock.describe()} of this schedule", []
    lock = RedisLock(redis_client(redis_url), lock_key(schedule_id), ttl_seconds)
    try:
        if lock.acquire():
            return lock, None, []
        lock.close()
        return None, f"another run holds the {lock.describe()}: it is making this schedule's " \
                     "backup", []
    except LockError as exc:
        lock.close()
        return None, None, [f"Redis at {describe_redis(redis_url)} is unreachable "
                            f"({one_line(exc)}): this backup runs guarded by the catalog's "
                            "slot claim only"]


def acquire(settings: Settings, *, schedule_id: str, slot: datetime | str, run_id: str | None,
            redis_url: str | None, ttl_seconds: float) -> SlotGuard | Skipped:
    """Lock, then claim; a SlotGuard that is already renewing, or why this run is skipped."""
    schedule_id = parse_id(schedule_id)
    slot = slots.slot_time(slot)
    lock, busy, warnings = _take_lock(settings, schedule_id, redis_url, ttl_seconds)
    if busy:
        return Skipped(busy, warnings)
    try:
        claim = slots.claim(settings.database_url, schedule_id=schedule_id, slot=slot,
                            owner_token=slots.new_token(), run_id=run_id,
                            ttl_seconds=ttl_seconds)
    except BaseException as exc:
        if lock is not None:
            lock.close()
        if isinstance(exc, slots.SlotUnavailable):
            return Skipped(str(exc), warnings)
        raise
    if claim.took_over_from:
        warnings.append(f"took over slot {slots.slot_text(slot)} from run "
                        f"{claim.took_over_from}, which had stopped renewing its claim")
    guard = SlotGuard(settings, claim, lock, ttl_seconds, warnings)
    guard.start()
    return guard
