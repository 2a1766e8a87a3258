"""Topic runs: the messages a fit reads, and one stored result per account per fit.

Privacy (docs/SAFETY.md): messages of erased or currently banned users are never read for
topics, and a stored run keeps example message *ids*, not texts. Texts are looked up when the
run is shown, through the same filter, so an erasure or the retention job that removes a
message also removes it from every stored run's examples; only the top words stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.analytics.topic_model import TopicFit, TopicText
from bot.domain import as_utc
from bot.storage import models as m

KEEP_RUNS = 48  # per account: two days of hourly fits, for looking back; older ones go
EXAMPLE_SHOWN_CHARS = 160


@dataclass(frozen=True, slots=True)
class ShownTopic:
    words: tuple[str, ...]
    size: int
    share: float  # of this window's messages
    # Of the previous window's messages, same topic; None when that window had none.
    previous_share: float | None
    examples: tuple[str, ...]  # shortened; only messages still stored and shareable

    @property
    def trend(self) -> float | None:
        """Change in share, in percentage points (positive: people write about it more); None
        without a previous window to compare with."""
        if self.previous_share is None:
            return None
        return 100 * (self.share - self.previous_share)


@dataclass(frozen=True, slots=True)
class TopicsReport:
    fitted_at: datetime
    window_start: datetime
    window_end: datetime
    messages: int
    previous_messages: int
    topics: tuple[ShownTopic, ...]


def _shareable(account_id: int) -> Any:
    """Inbound messages of this account whose sender is neither erased nor banned."""
    return (
        select(m.Message.id, m.Message.text)
        .outerjoin(m.PlatformUser, m.Message.user_id == m.PlatformUser.id)
        .where(
            m.Message.account_id == account_id,
            m.Message.direction == m.Direction.INBOUND,
            func.coalesce(m.PlatformUser.erased, False).is_(False),
            m.PlatformUser.banned_at.is_(None),
        )
    )


def texts_between(
    session: Session, account_id: int, start: datetime, end: datetime
) -> list[TopicText]:
    """Inbound texts sent in [start, end), first versions only, without erased or banned
    users' messages and without blank ones, in id order."""
    at = func.coalesce(m.Message.sent_at, m.Message.created_at)
    rows = session.execute(
        _shareable(account_id)
        .where(m.Message.edit_version == 0, at >= start, at < end)
        .order_by(m.Message.id)
    ).all()
    return [TopicText(message_id, text) for message_id, text in rows if text.strip()]


def save(
    session: Session,
    account_id: int,
    fit: TopicFit,
    *,
    fitted_at: datetime,
    window_start: datetime,
    window_end: datetime,
) -> int:
    """Store one run and forget this account's runs beyond the newest KEEP_RUNS."""
    row = m.TopicRun(
        account_id=account_id,
        fitted_at=fitted_at,
        window_start=window_start,
        window_end=window_end,
        messages=fit.messages,
        topics=[
            {
                "words": list(t.words),
                "size": t.size,
                "previous_size": t.previous_size,
                "previous_messages": fit.previous_messages,
                "example_ids": list(t.example_ids),
            }
            for t in fit.topics
        ],
    )
    session.add(row)
    session.flush()
    kept = (
        select(m.TopicRun.id)
        .where(m.TopicRun.account_id == account_id)
        .order_by(m.TopicRun.id.desc())
        .limit(KEEP_RUNS)
    )
    session.execute(
        delete(m.TopicRun).where(
            m.TopicRun.account_id == account_id, m.TopicRun.id.not_in(kept.scalar_subquery())
        )
    )
    return row.id


def latest(session: Session, account_id: int) -> TopicsReport | None:
    """The newest run of this account, examples resolved to (shortened) texts; None before
    the first fit."""
    run = session.scalars(
        select(m.TopicRun)
        .where(m.TopicRun.account_id == account_id)
        .order_by(m.TopicRun.id.desc())
        .limit(1)
    ).first()
    if run is None:
        return None
    wanted = [i for topic in run.topics for i in topic.get("example_ids", [])]
    texts = _example_texts(session, account_id, wanted)
    previous_messages = next((t.get("previous_messages", 0) for t in run.topics), 0)
    return TopicsReport(
        fitted_at=as_utc(run.fitted_at),
        window_start=as_utc(run.window_start),
        window_end=as_utc(run.window_end),
        messages=run.messages,
        previous_messages=previous_messages,
        topics=tuple(
            ShownTopic(
                words=tuple(topic["words"]),
                size=topic["size"],
                share=topic["size"] / run.messages if run.messages else 0.0,
                previous_share=(
                    topic["previous_size"] / previous_messages if previous_messages else None
                ),
                examples=tuple(texts[i] for i in topic.get("example_ids", []) if i in texts),
            )
            for topic in run.topics
        ),
    )


def _example_texts(session: Session, account_id: int, ids: Sequence[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(_shareable(account_id).where(m.Message.id.in_(ids))).all()
    return {message_id: _shorten(text) for message_id, text in rows}


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= EXAMPLE_SHOWN_CHARS:
        return flat
    return flat[: EXAMPLE_SHOWN_CHARS - 1].rsplit(" ", 1)[0] + "…"
