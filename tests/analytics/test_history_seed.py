"""The benchmarks' and screenshots' month of history (benchmarks/history_seed.py) on both
backends: what it writes is consistent, so the figures measured on it mean something."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from benchmarks.history_seed import History, seed_history
from bot.domain import DecisionAction, utcnow
from bot.storage import models as m
from bot.storage.db import Database


def test_a_month_of_history_hangs_together(migrated_db: Database) -> None:
    with migrated_db.session() as s:
        s.add(m.Account(name="shop", platform="console", handle="shop"))
    now = utcnow()
    history = History(messages=300, days=30, users=5)

    account_id = seed_history(migrated_db, "shop", history, now)

    with migrated_db.session() as s:
        inbound = s.execute(
            select(m.Message.decision, m.Message.created_at).where(
                m.Message.account_id == account_id, m.Message.direction == m.Direction.INBOUND
            )
        ).all()
        replies = s.scalar(select(func.count()).where(m.Message.direction == m.Direction.OUTBOUND))
        analyses = s.scalar(select(func.count()).select_from(m.Analysis))
        drafts = s.scalar(select(func.count()).select_from(m.ReplyDraft))
        decided = s.scalar(select(func.count()).select_from(m.ModerationAction))
        chats = s.scalar(select(func.count()).select_from(m.Conversation))
    decisions = [d for d, _ in inbound]
    assert len(inbound) == analyses == 300 and chats == 5
    assert replies == sum(d is not DecisionAction.IGNORE for d in decisions)
    assert drafts == decided == sum(d is DecisionAction.REVIEW for d in decisions)
    assert all(d is not None for d in decisions) and len(set(decisions)) == 3
    oldest = min(when for _, when in inbound)
    assert now.replace(tzinfo=None) - oldest.replace(tzinfo=None) <= timedelta(days=31)
