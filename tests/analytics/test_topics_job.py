"""The topics job on both backends: what it reads (no erased or banned users' messages), what
it stores (example ids, texts resolved on reading), and that with two runners only the one
holding the account's lease fits."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from bot.analytics.topics_job import FitSummary, TopicsJob, lease_name
from bot.domain import utcnow
from bot.errors import NotFoundError
from bot.storage import leases
from bot.storage import models as m
from bot.storage import topics as topic_store
from bot.storage.db import Database
from tests.analytics.seed import Seeder
from tests.analytics.test_topic_model import labelled

SECRET = "zebra crossing umbrella"  # only erased or banned users ever wrote this


def _seed(db: Database) -> int:
    now = utcnow()
    labels, texts = labelled()
    with db.session() as s:
        shop = Seeder(s)
        for i, (label, text) in enumerate(zip(labels, texts, strict=True)):
            shop.inbound(now - timedelta(hours=i + 1), text.text, user=f"u{i % 7}")
            if label == "wifi":  # last week's window: wifi only
                shop.inbound(now - timedelta(days=8, hours=i), text.text, user="old")
        for i in range(12):
            shop.inbound(now - timedelta(hours=2), f"{SECRET} {i}", user="gone", erased=True)
            shop.inbound(now - timedelta(hours=3), f"{SECRET} {i}", user="bad", banned=True)
        shop.inbound(now - timedelta(days=30), "far too old wifi question", user="old")
        return shop.account.id


@pytest.fixture
def seeded(migrated_db: Database) -> tuple[Database, int]:
    return migrated_db, _seed(migrated_db)


def _job(db: Database, holder: str = "me") -> TopicsJob:
    return TopicsJob(db, ["shop"], window_days=7, max_topics=8, lease_s=600, holder=holder)


def test_reads_only_shareable_messages_of_the_window(seeded: tuple[Database, int]) -> None:
    db, account_id = seeded
    now = utcnow()
    with db.session() as s:
        current = topic_store.texts_between(s, account_id, now - timedelta(days=7), now)
        previous = topic_store.texts_between(
            s, account_id, now - timedelta(days=14), now - timedelta(days=7)
        )
    assert len(current) == 60
    assert len(previous) == 15
    assert not any(SECRET in t.text for t in current + previous)


def test_a_fit_stores_ids_and_shows_texts(seeded: tuple[Database, int]) -> None:
    db, account_id = seeded
    summary = _job(db).fit("shop")
    assert (summary.messages, summary.topics) == (60, 4)
    with db.session() as s:
        stored = s.scalars(select(m.TopicRun)).one()
        report = topic_store.latest(s, account_id)
    assert all(set(t) >= {"words", "size", "example_ids"} for t in stored.topics)
    assert "text" not in str(stored.topics)  # ids only, never texts
    assert report is not None
    assert report.messages == 60 and report.previous_messages == 15
    wifi = next(t for t in report.topics if t.words[0] == "wifi")
    assert wifi.previous_share is not None
    assert wifi.previous_share > 0.8 > wifi.share  # all of last week, a quarter of this one
    assert wifi.trend is not None and wifi.trend < 0
    assert all(1 <= len(t.examples) <= 3 for t in report.topics)

    # An example removed later (erasure, retention) disappears from the stored run too.
    shown = wifi.examples[0]
    with db.session() as s:
        s.execute(delete(m.Message).where(m.Message.text == shown))
    with db.session() as s:
        again = topic_store.latest(s, account_id)
    assert again is not None
    assert shown not in next(t for t in again.topics if t.words[0] == "wifi").examples


def test_old_runs_are_forgotten(
    seeded: tuple[Database, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _ = seeded
    monkeypatch.setattr(topic_store, "KEEP_RUNS", 2)
    job = _job(db)
    ids = [job.fit("shop").run_id for _ in range(3)]
    with db.session() as s:
        assert list(s.scalars(select(m.TopicRun.id).order_by(m.TopicRun.id))) == ids[1:]


def test_two_runners_one_fits(seeded: tuple[Database, int]) -> None:
    db, account_id = seeded
    first, second = _job(db, "first"), _job(db, "second")

    async def both() -> tuple[list[FitSummary], list[FitSummary]]:
        return await first.run(), await second.run()

    done_first, done_second = asyncio.run(both())
    assert len(done_first) == 1 and done_second == []
    assert asyncio.run(first.run())  # the holder keeps fitting at its next run
    assert asyncio.run(second.run()) == []
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(m.TopicRun)) == 2
        assert leases.holder(s, lease_name(account_id)) == "first"

    first.release()  # shutdown: the other runner takes over at its next run
    assert len(asyncio.run(second.run())) == 1


def test_an_unknown_account_is_named(migrated_db: Database) -> None:
    with pytest.raises(NotFoundError, match="nobody"):
        _job(migrated_db).fit("nobody")
