"""Storage behaviours the pipeline relies on, on both backends."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot.domain import ChatKind, Incoming, Mode, utcnow
from bot.jobs import JobStats, guarded
from bot.storage import history
from bot.storage import models as m
from bot.storage.db import Database
from tests.core.test_pipeline import _pipeline
from tests.fakes import CannedDrafter, RecordingChannel


def _incoming(n: int, kind: ChatKind = ChatKind.PRIVATE, **kw: object) -> Incoming:
    return Incoming(
        platform="console",
        account="acct",
        chat_id="42" if kind is ChatKind.PRIVATE else "-100",
        message_id=str(n),
        user_id="42",
        text="hello",
        chat_kind=kind,
        **kw,  # type: ignore[arg-type]
    )


def test_old_delivery_ids_are_pruned(migrated_db: Database) -> None:
    with migrated_db.session() as s:
        history.ingest(s, _incoming(1, update_id=1))
        history.ingest(s, _incoming(2, update_id=2))
        s.execute(
            update(m.ProcessedUpdate)
            .where(m.ProcessedUpdate.update_id == 1)
            .values(processed_at=utcnow() - timedelta(days=8))
        )
    with migrated_db.session() as s:
        assert history.prune_processed_updates(s, timedelta(days=7)) == 1
        left = s.scalars(select(m.ProcessedUpdate.update_id)).all()
    assert left == [2]


def test_a_private_message_clears_unreachable(migrated_db: Database) -> None:
    with migrated_db.session() as s:
        history.ingest(s, _incoming(1))
        s.execute(update(m.PlatformUser).values(unreachable=True))
    with migrated_db.session() as s:  # a group message says nothing about a block
        history.ingest(s, _incoming(2, ChatKind.GROUP))
        assert s.scalars(select(m.PlatformUser.unreachable)).one() is True
    with migrated_db.session() as s:
        history.ingest(s, _incoming(3))
        assert s.scalars(select(m.PlatformUser.unreachable)).one() is False


def test_resume_leaves_day_old_messages_unanswered(migrated_db: Database) -> None:
    with migrated_db.session() as s:
        history.ingest(s, _incoming(1, sent_at=utcnow() - timedelta(days=2)))
        history.ingest(s, _incoming(2))
    channel = RecordingChannel()
    pipeline, outbox = _pipeline(migrated_db, Mode.AUTO, CannedDrafter(), channel)

    async def go() -> None:
        await pipeline.resume_unhandled("console", "acct")
        await pipeline.drain()
        await outbox.idle()

    asyncio.run(go())
    assert [s.message.reply_to_message_id for s in channel.sent] == ["2"]
    with migrated_db.session() as s:
        old = s.scalars(select(m.Message).where(m.Message.platform_message_id == "1")).one()
        assert old.decision_reason == "too old to answer after a restart"
        assert (
            s.scalar(
                select(func.count()).select_from(m.Message).where(m.Message.handled_at.is_(None))
            )
            == 0
        )


def test_a_failing_job_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    stats = JobStats()

    async def broken() -> None:
        raise RuntimeError("boom")

    job = guarded("broken", broken, stats)

    async def run_once() -> None:
        await job()

    with caplog.at_level(logging.ERROR, logger="bot.jobs"):
        asyncio.run(run_once())
    assert stats.runs == {"broken": 1} and stats.errors == {"broken": 1}
    assert "scheduled job 'broken' failed" in caplog.text
