"""A month of plausible history for one stored account: inbound messages on a few support
themes with analyses and decisions, replies, and drafts decided by three moderators. Rows go
straight through the ORM with chosen timestamps (the pipeline would stamp them "now").

One seeder serves the dashboard's benchmarks (`benchmarks.analytics_bench`,
`benchmarks.web_pages_bench`: thousands of messages, written in bulk) and its screenshots
(`benchmarks.web_screenshots`). The tests build their few rows by hand (tests/analytics/seed.py),
where every timestamp is asserted on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.domain import (
    ActorKind,
    ChatKind,
    DecisionAction,
    DraftStatus,
    ModerationKind,
    Sentiment,
    VerdictAction,
)
from bot.storage import models as m
from bot.storage.db import Database

THEMES = {
    "order_status": [
        "where is my order, the tracking has not moved since monday",
        "my parcel still says in transit, when will it be delivered",
        "the courier never delivered my package",
    ],
    "refund": [
        "I want a refund for the broken lamp",
        "you charged my card twice, please refund one payment",
        "how long does the refund for my return take",
    ],
    "complaint": [
        "nobody answers my emails, this is really disappointing",
        "the worst customer service I have had",
        "I waited on the phone for an hour",
    ],
    "question": [
        "do you ship to canada and how much does shipping cost",
        "can I change the delivery address of my order",
        "is the blue lamp back in stock soon",
    ],
    "greeting": ["hello, thanks for the quick help", "good morning team", "thank you so much"],
}
MODERATORS = ("alice", "bob", "chen")
RISING = "refund"  # asked about twice as often in the last week: the topics' trend


@dataclass(frozen=True, slots=True)
class History:
    """How much history, and how it is decided. Later days are busier (a third more by the
    end of a month)."""

    messages: int = 1400
    days: int = 30
    users: int = 12  # each with one private chat
    decisions: tuple[int, int, int] = (4, 5, 1)  # weights of ignore, auto, review
    seed: int = 7


def seed_history(
    db: Database, account: str, history: History = History(), now: datetime | None = None
) -> int:
    """Write `history.messages` inbound messages for the stored `account`, with what followed
    each; returns the account's id."""
    now = now or datetime.now(UTC)
    rng = random.Random(history.seed)
    days = range(history.days)
    busy = [1 + (history.days - day) / (3 * history.days) for day in days]  # day 0 is today
    with db.session() as s:
        account_id = s.scalars(select(m.Account.id).where(m.Account.name == account)).one()
        users = [
            m.PlatformUser(
                account_id=account_id, platform_user_id=f"h{i}", display_name=f"customer {i}"
            )
            for i in range(history.users)
        ]
        chats = [
            m.Conversation(account_id=account_id, chat_id=f"h{i}", kind=ChatKind.PRIVATE)
            for i in range(history.users)
        ]
        s.add_all([*users, *chats])
        s.flush()
        # Written table by table, parents first, so thousands of rows go in a few INSERTs.
        inbound: list[tuple[m.Message, str, DecisionAction]] = []
        for n in range(history.messages):
            day = rng.choices(days, weights=busy)[0]
            when = now - timedelta(days=day, seconds=rng.uniform(600, 86400))
            theme = rng.choice(list(THEMES) + ([RISING] * 2 if day < 7 else []))
            who = rng.randrange(history.users)
            decision = rng.choices(list(DecisionAction), weights=history.decisions)[0]
            message = m.Message(
                account_id=account_id,
                conversation_id=chats[who].id,
                user_id=users[who].id,
                direction=m.Direction.INBOUND,
                platform_message_id=f"h{n}",
                text=rng.choice(THEMES[theme]),
                decision=decision,
                handled_at=when,
                sent_at=when,
                created_at=when,
            )
            inbound.append((message, theme, decision))
        s.add_all([message for message, _, _ in inbound])
        s.flush()
        analyses: list[m.Analysis] = []
        drafts: list[tuple[m.ReplyDraft, datetime]] = []
        replies: list[m.Message] = []
        for message, theme, decision in inbound:
            when = message.created_at
            negative = theme == "complaint"
            analyses.append(
                m.Analysis(
                    message_id=message.id,
                    intent=theme,
                    intent_score=0.8,
                    sentiment=Sentiment.NEGATIVE if negative else rng.choice(list(Sentiment)),
                    sentiment_score=0.8,
                    input_verdict=VerdictAction.ALLOW,
                    model_version="seeded",
                    created_at=when,
                )
            )
            if decision is DecisionAction.IGNORE:
                continue
            sent = when + timedelta(seconds=rng.expovariate(1 / 20))
            if decision is DecisionAction.REVIEW:
                sent = when + timedelta(seconds=rng.expovariate(1 / 1200))
                draft = m.ReplyDraft(
                    message_id=message.id,
                    text="a reply",
                    raw_text="a reply",
                    status=DraftStatus.SENT,
                    verdict=VerdictAction.ALLOW,
                    model_version="seeded",
                    created_at=when,
                )
                drafts.append((draft, sent))
            replies.append(
                m.Message(
                    account_id=account_id,
                    conversation_id=message.conversation_id,
                    direction=m.Direction.OUTBOUND,
                    platform_message_id=f"r{message.platform_message_id}",
                    reply_to_id=message.id,
                    text="Thanks for writing, we are on it.",
                    addressed=False,
                    sent_at=sent,
                    handled_at=sent,
                    created_at=sent,
                )
            )
        s.add_all([*analyses, *replies, *(draft for draft, _ in drafts)])
        s.flush()
        s.add_all(
            m.ModerationAction(
                account_id=account_id,
                draft_id=draft.id,
                actor_kind=ActorKind.WEB.value,
                moderator=rng.choice(MODERATORS),
                action=rng.choice((ModerationKind.APPROVE, ModerationKind.EDIT)),
                created_at=decided,
            )
            for draft, decided in drafts
        )
    return account_id
