"""The lock on real Redis: one owner, released and renewed only by its owner, expiring when
not renewed; and the single-host file lock."""

import time

import pytest

from backup_pipeline.scheduling.lock import (
    FileLock,
    RedisLock,
    describe_redis,
    lock_key,
    redis_client,
)


@pytest.fixture
def client(redis_url: str, redis_prefix: str):
    c = redis_client(redis_url)
    yield c
    for key in c.scan_iter(f"{redis_prefix}*"):
        c.delete(key)
    c.close()


def test_key_follows_the_seed():
    assert lock_key("abc") == "backup:schedule:abc"
    assert describe_redis("redis://:secret@cache.internal:6380/2") == "cache.internal:6380/2"


def test_one_owner_with_a_random_token_and_a_ttl(client, redis_prefix: str):
    key = f"{redis_prefix}backup:schedule:1"
    first, second = RedisLock(client, key, 300), RedisLock(client, key, 300)
    assert first.token != second.token
    assert first.acquire()
    assert not second.acquire()
    assert client.get(key).decode() == first.token
    assert 299_000 < client.pttl(key) <= 300_000


def test_only_the_owner_releases_or_renews(client, redis_prefix: str):
    key = f"{redis_prefix}backup:schedule:2"
    owner, other = RedisLock(client, key, 300), RedisLock(client, key, 300)
    assert owner.acquire()
    client.pexpire(key, 10_000)
    assert not other.release() and not other.renew()
    assert client.get(key).decode() == owner.token and client.pttl(key) <= 10_000
    assert owner.renew() and client.pttl(key) > 10_000
    assert owner.release()
    assert client.get(key) is None
    assert not owner.release() and not owner.renew()


def test_an_expired_lock_is_free_and_its_former_owner_cannot_touch_the_new_one(
        client, redis_prefix: str):
    key = f"{redis_prefix}backup:schedule:3"
    crashed = RedisLock(client, key, 0.2)
    assert crashed.acquire()
    while client.exists(key):  # nobody renews: Redis lets it expire
        time.sleep(0.05)
    successor = RedisLock(client, key, 300)
    assert successor.acquire()
    assert not crashed.renew() and not crashed.release()
    assert client.get(key).decode() == successor.token


def test_file_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / ".locks" / "schedule-x.lock"
    first, second = FileLock(path), FileLock(path)
    assert first.acquire()
    assert not second.acquire()
    assert first.renew() and not second.renew()
    first.close()
    assert second.acquire()
    second.close()
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
