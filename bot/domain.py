"""Plain dataclasses that every room speaks.

Channels turn platform objects into these; the pipeline, NLP, safety and storage code never see
a `telegram.Update`, an APScheduler job or a HF tensor. Keep them free of behaviour beyond small
derived properties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Mode(StrEnum):
    """How an account answers: post on its own, always ask a moderator, or stay silent."""

    AUTO = "auto"
    REVIEW_ALL = "review_all"
    OFF = "off"


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class VerdictAction(StrEnum):
    """What the safety gate allows: send, ask a moderator, or never send."""

    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


class DecisionAction(StrEnum):
    IGNORE = "ignore"
    AUTO = "auto"
    REVIEW = "review"


class ChatKind(StrEnum):
    PRIVATE = "private"
    GROUP = "group"
    CHANNEL = "channel"


class Role(StrEnum):
    USER = "user"
    BOT = "bot"


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we write is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as a channel delivered it.

    `addressed` is the channel's judgement that the message is meant for the bot (a DM, a
    mention, a reply to the bot); unaddressed messages are stored as context and not answered.
    `update_id` is the platform's delivery id (per bot) used to drop redeliveries; channels
    without one (the console) leave it None.
    """

    platform: str
    account: str
    chat_id: str
    message_id: str
    user_id: str
    text: str
    user_name: str | None = None
    chat_kind: ChatKind = ChatKind.PRIVATE
    chat_title: str | None = None
    addressed: bool = True
    update_id: int | None = None
    edit_version: int = 0
    reply_to_message_id: str | None = None
    sent_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Turn:
    """One line of conversation history, oldest first when in a list."""

    role: Role
    text: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Analysis:
    """Intent and sentiment of one message; scores are probabilities of the chosen label."""

    intent: str
    intent_score: float
    sentiment: Sentiment
    sentiment_score: float
    # Per-label probabilities, e.g. {"intent:question": 0.7, "sentiment:negative": 0.1, ...}.
    scores: dict[str, float] = field(default_factory=dict)
    model: str = "lexical"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The safety gate's judgement of a text (an inbound message or a draft)."""

    action: VerdictAction
    toxicity: float
    flags: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True, slots=True)
class Draft:
    """A generated reply. `raw` is what the model produced before clean-up.

    `fallback_used` is True when the cleaned text was empty and the configured fallback reply
    stands in; `raw` then still holds the model's output so the failure stays visible.
    """

    text: str
    raw: str
    fallback_used: bool
    model: str
    adapter: str | None = None
    prompt_tokens: int = 0
    new_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """What the pipeline did with one incoming message."""

    action: DecisionAction
    reason: str
    message_id: int | None = None  # database id of the stored inbound message
    draft_id: int | None = None
    outbox_id: int | None = None
    reply_text: str | None = None
    duplicate: bool = False


class OutgoingKind(StrEnum):
    REPLY = "reply"  # an answer in the user's chat, quoting their message
    CARD = "card"  # a draft card for moderators, with approve / edit / reject buttons
    NOTICE = "notice"  # any other text: command answers, confirmations


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Something a channel must deliver. `reply_to_message_id` is the platform id to quote;
    a CARD carries `draft_id` so the channel can attach moderation buttons for it."""

    platform: str
    account: str
    chat_id: str
    text: str
    reply_to_message_id: str | None = None
    outbox_id: int | None = None
    kind: OutgoingKind = OutgoingKind.REPLY
    draft_id: int | None = None
