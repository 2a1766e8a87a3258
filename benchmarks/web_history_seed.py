"""A month of plausible history for one stored account, for the dashboard's screenshots: inbound
messages on a few support themes with analyses and decisions, replies, drafts decided by
moderators, and a topics run fitted by the real job. Rows go straight through the ORM with
chosen timestamps (the pipeline would stamp them "now")."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.analytics.topics_job import TopicsJob
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


def seed_history(
    db: Database, account: str, days: int = 30, per_day: int = 40, now: datetime | None = None
) -> None:
    now = now or datetime.now(UTC)
    rng = random.Random(7)
    with db.session() as s:
        account_id = s.scalars(select(m.Account.id).where(m.Account.name == account)).one()
        chats = []
        for i in range(12):
            user = m.PlatformUser(
                account_id=account_id, platform_user_id=f"h{i}", display_name=f"customer {i}"
            )
            chat = m.Conversation(account_id=account_id, chat_id=f"h{i}", kind=ChatKind.PRIVATE)
            s.add_all([user, chat])
            s.flush()
            chats.append((user.id, chat.id))
        for day in range(days):
            # Busier lately, and refunds rising over the last week (the topics' trend).
            for n in range(per_day + day // 3):
                when = now - timedelta(days=day, seconds=rng.uniform(600, 86400))
                theme = rng.choice(list(THEMES) + (["refund"] * 2 if day < 7 else []))
                user_id, chat_id = rng.choice(chats)
                decision = rng.choices(list(DecisionAction), weights=(4, 5, 1))[0]
                message = m.Message(
                    account_id=account_id,
                    conversation_id=chat_id,
                    user_id=user_id,
                    direction=m.Direction.INBOUND,
                    platform_message_id=f"h{day}-{n}",
                    text=rng.choice(THEMES[theme]),
                    decision=decision,
                    handled_at=when,
                    sent_at=when,
                    created_at=when,
                )
                s.add(message)
                s.flush()
                s.add(
                    m.Analysis(
                        message_id=message.id,
                        intent=theme,
                        intent_score=0.8,
                        sentiment=Sentiment.NEGATIVE
                        if theme == "complaint"
                        else rng.choice(list(Sentiment)),
                        sentiment_score=0.8,
                        input_verdict=VerdictAction.ALLOW,
                        model_version="screens",
                        created_at=when,
                    )
                )
                if decision is DecisionAction.IGNORE:
                    continue
                sent = when + timedelta(seconds=rng.expovariate(1 / 20))
                if decision is DecisionAction.REVIEW:
                    draft = m.ReplyDraft(
                        message_id=message.id,
                        text="a reply",
                        raw_text="a reply",
                        status=DraftStatus.SENT,
                        verdict=VerdictAction.ALLOW,
                        model_version="screens",
                        created_at=when,
                    )
                    s.add(draft)
                    s.flush()
                    sent = when + timedelta(seconds=rng.expovariate(1 / 1200))
                    s.add(
                        m.ModerationAction(
                            account_id=account_id,
                            draft_id=draft.id,
                            actor_kind=ActorKind.WEB.value,
                            moderator=rng.choice(MODERATORS),
                            action=rng.choice((ModerationKind.APPROVE, ModerationKind.EDIT)),
                            created_at=sent,
                        )
                    )
                s.add(
                    m.Message(
                        account_id=account_id,
                        conversation_id=chat_id,
                        direction=m.Direction.OUTBOUND,
                        platform_message_id=f"r{day}-{n}",
                        reply_to_id=message.id,
                        text="Thanks for writing, we are on it.",
                        addressed=False,
                        sent_at=sent,
                        handled_at=sent,
                        created_at=sent,
                    )
                )
    TopicsJob(db, [account], window_days=7).fit(account)
