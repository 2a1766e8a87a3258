"""The topics job inside a running service: built from the settings, holding the account's
lease while it fits, and giving the lease up on the one shutdown path."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.analytics.topics_job import TopicsJob, lease_name
from bot.config import Settings
from bot.service import Service
from bot.storage import accounts as account_store
from bot.storage import leases
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema
from tests.fakes import CannedDrafter, RecordingChannel, account

SHOP = account("shop")


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Database]:
    ensure_schema(sqlite_url)
    database = Database(sqlite_url)
    with database.session() as s:
        account_store.bind(s, "shop", "console", "shop")
    yield database
    database.dispose()


def _holder(db: Database) -> str | None:
    with db.session() as s:
        state = account_store.by_name(s, "shop")
        assert state is not None
        return leases.holder(s, lease_name(state.id))


def test_the_service_fits_under_the_lease_and_frees_it_on_stop(
    db: Database, tmp_path: Path
) -> None:
    settings = Settings(database_url=db.url, adapters_dir=tmp_path / "adapters")
    service = Service(settings, [SHOP], [RecordingChannel(account="shop")], drafter=CannedDrafter())
    other = TopicsJob(db, ["shop"], holder="another process")

    async def scenario() -> None:
        stop = asyncio.Event()
        serving = asyncio.create_task(service.run(stop))
        for _ in range(400):
            if service.running is not None and service.running.topics is not None:
                break
            await asyncio.sleep(0.025)
        assert service.running is not None
        topics = service.running.topics
        assert topics is not None
        assert topics.window.days == settings.topics_window_days
        assert len(await topics.run()) == 1  # what the scheduled job calls
        assert _holder(db) == topics.holder
        assert await other.run() == []  # while the service holds it, nobody else fits
        stop.set()
        await asyncio.wait_for(serving, 60)

    asyncio.run(scenario())
    assert _holder(db) is None
    assert len(asyncio.run(other.run())) == 1


def test_turned_off_there_is_no_job(db: Database, tmp_path: Path) -> None:
    settings = Settings(
        database_url=db.url, adapters_dir=tmp_path / "adapters", topics_enabled=False
    )
    service = Service(settings, [SHOP], [RecordingChannel(account="shop")], drafter=CannedDrafter())

    stop = asyncio.Event()
    stop.set()  # the service still starts every part, then stops at once
    asyncio.run(service.run(stop))
    assert service.running is not None
    assert service.running.topics is None
