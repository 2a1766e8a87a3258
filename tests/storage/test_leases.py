"""Named leases on both backends: one holder at a time, expiry hands it over, a holder that
lost it cannot renew or release it, and racers never both win."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from bot.domain import utcnow
from bot.storage import leases
from bot.storage.db import Database

NAME = "retrain"


def _acquire(db: Database, holder: str, ttl_s: float = 60.0, now: datetime | None = None) -> bool:
    with db.session() as s:
        return leases.acquire(s, NAME, holder, ttl_s, now=now)


def _holder(db: Database, now: datetime | None = None) -> str | None:
    with db.session() as s:
        return leases.holder(s, NAME, now=now)


def test_one_holder_at_a_time_and_renewal_keeps_the_start(migrated_db: Database) -> None:
    assert _holder(migrated_db) is None
    assert _acquire(migrated_db, "a") is True
    assert _acquire(migrated_db, "b") is False
    assert _holder(migrated_db) == "a"
    with migrated_db.session() as s:
        first = leases.get(s, NAME)
    assert first is not None

    assert _acquire(migrated_db, "a", ttl_s=600.0) is True  # a renewal by the holder
    with migrated_db.session() as s:
        again = leases.get(s, NAME)
        assert leases.renew(s, NAME, "a", 60.0) is True
        assert leases.renew(s, NAME, "b", 60.0) is False
    assert again is not None
    assert again.acquired_at == first.acquired_at
    assert again.expires_at > first.expires_at


def test_release_frees_it_and_only_the_holder_can(migrated_db: Database) -> None:
    assert _acquire(migrated_db, "a")
    with migrated_db.session() as s:
        assert leases.release(s, NAME, "b") is False
        assert leases.release(s, NAME, "a") is True
        assert leases.release(s, NAME, "a") is False
    assert _holder(migrated_db) is None
    assert _acquire(migrated_db, "b") is True


def test_an_expired_holder_loses_it(migrated_db: Database) -> None:
    t0 = utcnow()
    assert _acquire(migrated_db, "a", ttl_s=10.0, now=t0)
    later = t0 + timedelta(seconds=11)
    assert _holder(migrated_db, now=later) is None
    assert _acquire(migrated_db, "b", ttl_s=10.0, now=later) is True
    with migrated_db.session() as s:
        # The stalled holder learns it lost: it can neither renew nor release.
        assert leases.renew(s, NAME, "a", 10.0, now=later) is False
        assert leases.release(s, NAME, "a") is False
        state = leases.get(s, NAME)
    assert state is not None and state.holder == "b"
    assert state.acquired_at == later  # a takeover starts afresh
    assert _holder(migrated_db, now=later) == "b"


def test_a_holder_still_on_time_is_not_displaced(migrated_db: Database) -> None:
    t0 = utcnow()
    assert _acquire(migrated_db, "a", ttl_s=10.0, now=t0)
    assert _acquire(migrated_db, "b", ttl_s=10.0, now=t0 + timedelta(seconds=9)) is False
    assert _holder(migrated_db, now=t0 + timedelta(seconds=9)) == "a"


@pytest.mark.parametrize("expired_row", [False, True], ids=["first-insert", "takeover"])
def test_racing_holders_exactly_one_wins(migrated_db: Database, expired_row: bool) -> None:
    if expired_row:
        assert _acquire(migrated_db, "dead", ttl_s=10.0, now=utcnow() - timedelta(minutes=5))
    racers = 8
    barrier = threading.Barrier(racers)
    won: dict[str, bool] = {}
    errors: list[BaseException] = []
    # One Database per racer: its own engine and connections, as separate processes would be.
    dbs = [Database(migrated_db.url) for _ in range(racers)]

    def race(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            won[f"r{i}"] = _acquire(dbs[i], f"r{i}")
        except BaseException as exc:  # noqa: BLE001  (re-raised below, in the test's thread)
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for db in dbs:
        db.dispose()
    assert not errors, errors
    winners = [name for name, ok in won.items() if ok]
    assert len(won) == racers and len(winners) == 1, won
    assert _holder(migrated_db) == winners[0]


def test_new_holder_ids_are_unique() -> None:
    assert leases.new_holder("x") != leases.new_holder("x")
    assert leases.new_holder("cli").startswith("cli@")
