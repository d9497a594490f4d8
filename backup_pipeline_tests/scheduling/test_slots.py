"""Slot claims on real PostgreSQL: the guard that holds even when every lock fails."""

import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest

from backup_pipeline.catalog import history
from backup_pipeline.errors import ConfigError
from backup_pipeline.scheduling import catalog, slots

SLOT = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
def sched(catalog_url: str) -> dict:
    return catalog.create(catalog_url, name="nightly", frequency="daily", retention=3)


def claim(url: str, schedule_id: str, ttl: float = 300, slot=SLOT, run: str = "run"):
    return slots.claim(url, schedule_id=schedule_id, slot=slot, owner_token=slots.new_token(),
                       run_id=run, ttl_seconds=ttl)


def begin_backup(url: str, c: slots.Claim) -> str:
    backup_id = history.create(url, backup_type="scheduled", trigger="test",
                               schedule_id=c.schedule_id)["id"]
    assert slots.attach(url, c, backup_id)
    return backup_id


def slot_row(url: str, schedule_id: str, slot=SLOT) -> dict:
    with psycopg.connect(url) as conn:
        cur = conn.execute("SELECT state, attempts, owner_token, dagster_run_id, backup_id::text"
                           " FROM backup.schedule_slots WHERE schedule_id = %s"
                           " AND slot_time = %s", (schedule_id, slot))
        names = [d.name for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))


def wait_for_lease_end(url: str, schedule_id: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute("SELECT lease_until > now() FROM backup.schedule_slots"
                           " WHERE schedule_id = %s", (schedule_id,)).fetchone()[0]:
            time.sleep(0.05)


def test_slot_times_are_utc_seconds():
    assert slots.slot_time("2026-03-01T04:00:00.123+01:00") == SLOT
    assert slots.slot_text(SLOT) == "2026-03-01T03:00:00Z"
    assert slots.run_key("abc", SLOT) == "abc@2026-03-01T03:00:00Z"
    with pytest.raises(ConfigError, match="no time zone"):
        slots.slot_time("2026-03-01T03:00:00")
    with pytest.raises(ConfigError, match="not an ISO 8601"):
        slots.slot_time("tomorrow")


def test_eight_concurrent_claims_one_winner(catalog_url: str, sched: dict):
    outcomes: list = []
    barrier = threading.Barrier(8)

    def contender(n: int) -> None:
        barrier.wait()
        try:
            outcomes.append(claim(catalog_url, sched["id"], run=f"run-{n}"))
        except slots.SlotUnavailable as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if isinstance(o, slots.Claim)]
    assert len(winners) == 1 and winners[0].attempt == 1
    losers = [o for o in outcomes if isinstance(o, str)]
    assert all("still working on it" in o for o in losers), losers
    row = slot_row(catalog_url, sched["id"])
    assert (row["state"], row["owner_token"]) == ("claimed", winners[0].owner_token)
    assert catalog.get(catalog_url, sched["id"])["last_run_at"] is not None


def test_takeover_only_after_the_lease_ran_out_and_the_loser_is_fenced(
        catalog_url: str, sched: dict):
    first = claim(catalog_url, sched["id"], ttl=0.3, run="first")
    first_backup = begin_backup(catalog_url, first)
    wait_for_lease_end(catalog_url, sched["id"])  # first is "paused": it does not renew

    second = claim(catalog_url, sched["id"], run="second")
    assert (second.attempt, second.took_over_from) == (2, "first")
    assert not slots.renew(catalog_url, first, 300)  # first wakes up: its claim is gone
    with slots.completing(catalog_url, first) as fence:
        assert not fence.owned and "run second took it over" in fence.reason

    second_backup = begin_backup(catalog_url, second)
    history.complete(catalog_url, second_backup, file_name="b.tar.gz")
    with slots.completing(catalog_url, second) as fence:
        assert fence.owned
        assert fence.complete(second_backup) == 1  # first's row, left in progress
    assert history.get(catalog_url, first_backup)["status"] == "failed"
    assert "abandoned" in history.get(catalog_url, first_backup)["error_message"]
    assert catalog.get(catalog_url, sched["id"])["last_backup_id"] == second_backup
    assert slot_row(catalog_url, sched["id"])["state"] == "completed"

    with pytest.raises(slots.SlotUnavailable, match="already completed by run second"):
        claim(catalog_url, sched["id"], run="third")


def test_a_completed_backup_whose_slot_was_not_marked_is_never_redone(
        catalog_url: str, sched: dict):
    """The owner died between completing its backup and completing the slot."""
    owner = claim(catalog_url, sched["id"], ttl=0.3, run="owner")
    backup_id = begin_backup(catalog_url, owner)
    history.complete(catalog_url, backup_id, file_name="a.tar.gz")
    wait_for_lease_end(catalog_url, sched["id"])
    with pytest.raises(slots.SlotUnavailable, match="already completed"):
        claim(catalog_url, sched["id"], run="late")
    assert slot_row(catalog_url, sched["id"])["state"] == "completed"


def test_a_released_claim_may_be_retried(catalog_url: str, sched: dict):
    failed = claim(catalog_url, sched["id"], run="failed")
    assert slots.release(catalog_url, failed, "disk full")
    retry = claim(catalog_url, sched["id"], run="retry")
    assert retry.attempt == 2
    assert not slots.release(catalog_url, failed, "again")  # not its claim any more


def test_other_slots_are_independent(catalog_url: str, sched: dict):
    claim(catalog_url, sched["id"], slot=SLOT)
    later = claim(catalog_url, sched["id"], slot=SLOT.replace(day=2))
    assert later.attempt == 1


def test_disabled_or_deleted_schedules_are_not_claimed(catalog_url: str, sched: dict):
    catalog.toggle(catalog_url, sched["id"])
    with pytest.raises(slots.SlotUnavailable, match="'nightly' is disabled"):
        claim(catalog_url, sched["id"])
    catalog.delete(catalog_url, sched["id"])
    with pytest.raises(slots.SlotUnavailable, match="no longer exists"):
        claim(catalog_url, sched["id"])


def test_the_catalog_refuses_a_second_completed_backup_for_one_slot(
        catalog_url: str, sched: dict):
    c = claim(catalog_url, sched["id"])
    one = begin_backup(catalog_url, c)
    two = history.create(catalog_url, backup_type="scheduled", trigger="test",
                         schedule_id=sched["id"])["id"]
    slots.attach(catalog_url, c, two)
    history.complete(catalog_url, one, file_name="one.tar.gz")
    with pytest.raises(psycopg.errors.UniqueViolation):
        history.complete(catalog_url, two, file_name="two.tar.gz")
