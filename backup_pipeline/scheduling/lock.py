"""The scheduled-backup lock: Redis with a random token, or a file lock on a single host.

Redis: `SET key token NX PX ttl`; renewal and release are Lua scripts that act only while the
key still holds this lock's token, so a lock that expired and was taken by someone else is
never extended or deleted by its former owner. A crashed owner stops renewing, and the key
expires within the TTL.

redis is imported when a Redis lock is made: every process that loads the definitions imports
this module, and only scheduled backups with REDIS_URL set need it (about 30 ms).
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import redis

LOCK_KEY = "backup:schedule:{schedule_id}"
DEFAULT_TTL_SECONDS = 300.0

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class LockError(Exception):
    """Redis failed (unreachable, timed out, refused the command); its message is Redis's."""


@contextmanager
def _redis_errors_as_lock_error() -> Iterator[None]:
    import redis

    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise LockError(str(exc) or type(exc).__name__) from exc


def lock_key(schedule_id: str) -> str:
    return LOCK_KEY.format(schedule_id=schedule_id)


def describe_redis(url: str) -> str:
    """host:port/db of a Redis URL, never its password."""
    parts = urlsplit(url)
    db = parts.path.lstrip("/") or "0"
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}/{db}"


def redis_client(url: str, timeout: float = 2.0) -> redis.Redis:
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


class RedisLock:
    """One owner at a time for `key`, identified by a random token."""

    def __init__(self, client: redis.Redis, key: str, ttl_seconds: float):
        self.client = client
        self.key = key
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.token = secrets.token_hex(16)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        with _redis_errors_as_lock_error():
            return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        """Extend the TTL while this token holds the key; False if it expired or moved on."""
        with _redis_errors_as_lock_error():
            return bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> bool:
        """Delete the key only if this token still holds it."""
        with _redis_errors_as_lock_error():
            return bool(self._release(keys=[self.key], args=[self.token]))

    def close(self) -> None:
        """Release (if still ours) and drop the connection; never raises."""
        with suppress(LockError):
            self.release()
        with suppress(LockError), _redis_errors_as_lock_error():
            self.client.close()

    def describe(self) -> str:
        return f"Redis lock {self.key}"


class FileLock:
    """The single-host lock (no REDIS_URL): flock on a file, released by the kernel when its
    process ends, so a crash never leaves it held."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def renew(self) -> bool:
        return self._fd is not None

    def release(self) -> bool:
        if self._fd is None:
            return False
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        return True

    def close(self) -> None:
        with suppress(OSError):
            self.release()

    def describe(self) -> str:
        return f"file lock {self.path.name}"
