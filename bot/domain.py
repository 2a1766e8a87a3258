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


# A safety head's label -> what the gate does at least (the `safety_label_verdicts` default).
SAFETY_LABEL_VERDICTS: dict[str, str] = {
    "neither": "allow",
    "neutral": "allow",
    "safe": "allow",
    "offensive": "review",
    "hate": "block",
    "unsafe_request": "block",
}


class DecisionAction(StrEnum):
    IGNORE = "ignore"
    AUTO = "auto"
    REVIEW = "review"


class DraftStatus(StrEnum):
    QUEUED = "queued"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"  # waited in the queue past AUTOREPLY_QUEUE_EXPIRY_H; nothing sent


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"  # a moderator stopped a delayed send before it was due


class ModerationKind(StrEnum):
    """What an audit row records. Every action and every refusal gets one."""

    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"
    OVERRIDE = "override"  # a blocked draft approved as it is, with a reason
    AUTO_SEND = "auto_send"
    PAUSE = "pause"
    RESUME = "resume"
    REFUSED = "refused"  # someone not allowed to act tried; nothing changed
    RELABEL = "relabel"  # a moderator corrected a message's intent or sentiment
    PROMOTE = "promote"  # an adapter version became the active one
    ROLLBACK = "rollback"  # the active adapter was retired and its predecessor restored
    REPLY = "reply"  # a moderator's own reply in a chat handed to people
    CANCEL = "cancel"  # a delayed send stopped before it went out
    BAN = "ban"
    UNBAN = "unban"
    HANDOFF = "handoff"  # a chat handed from the bot to the moderators
    HANDBACK = "handback"  # ... and given back to the bot
    EXPIRE = "expire"  # a queued draft nobody handled in time
    SAFE_REPLY = "safe_reply"  # the self-harm safe response, sent without review
    ERASE = "erase"  # a platform user's data was removed on request (GDPR Art. 17)
    PRUNE = "prune"  # data past the retention period was removed (GDPR Art. 5(1)(e))


class ChatKind(StrEnum):
    PRIVATE = "private"
    GROUP = "group"
    CHANNEL = "channel"


class Role(StrEnum):
    USER = "user"
    BOT = "bot"


# Marks the placeholder draft of a message waiting for a moderator's own reply (a handed-off
# chat, a flagged message): its model name and its flag. Not a model's text.
HANDOFF_FLAG = "handoff"

DEFAULT_PERSONA = (
    "You are the friendly support account of a small online shop. "
    "You answer briefly, politely and honestly, and never make promises you cannot keep."
)
DEFAULT_FALLBACK = "Thanks for your message! A member of our team will get back to you soon."


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


class DropReason(StrEnum):
    """Why a sampled candidate reply was not used (best-of-n)."""

    EMPTY = "empty"  # nothing left after clean-up
    GIBBERISH = "gibberish"  # mostly not words
    REPETITIVE = "repetitive"  # the same words over and over
    BLOCKED = "blocked"  # the safety gate blocks it
    OUTRANKED = "outranked"  # fine, but another candidate scored higher


@dataclass(frozen=True, slots=True)
class Candidate:
    """One sampled reply for a message, kept so moderators can see the alternatives and the
    learning loop can use the dropped ones as negatives.

    `score` is the mean log-probability per generated token under the model that sampled it
    (higher is better); `dropped` is None for the candidate that became the draft.
    """

    text: str  # cleaned ("" when nothing survived clean-up)
    raw: str
    score: float
    new_tokens: int = 0
    dropped: DropReason | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    """A generated reply. `raw` is what the model produced before clean-up.

    `fallback_used` is True when the cleaned text was empty (or, with best-of-n, when no
    candidate survived) and the configured fallback reply stands in; `raw` then still holds the
    model's output so the failure stays visible. `candidates` holds every sampled candidate,
    best first, when more than one was asked for.
    """

    text: str
    raw: str
    fallback_used: bool
    model: str
    adapter: str | None = None
    prompt_tokens: int = 0
    new_tokens: int = 0
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplyStyle:
    """How an account's replies are prompted and decoded (see `Settings` for each field).

    Requests with equal styles can share one `generate` call; the defaults are `Settings`'.
    """

    max_new_tokens: int = 48
    temperature: float = 0.8
    top_p: float = 0.9
    repetition_penalty: float = 1.3
    no_repeat_ngram_size: int = 3
    do_sample: bool = True
    seed: int | None = None
    prompt_format: str = "auto"  # auto, chat, plain or dialogpt (bot/nlp/prompts.py)
    persona: str = DEFAULT_PERSONA
    bot_name: str = "Bot"
    fallback_reply: str = DEFAULT_FALLBACK
    candidates: int = 1  # best-of-n: replies sampled per message
    min_new_tokens: int = 0  # benchmarks force equal lengths; 0 lets the reply end itself

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise ValueError("candidates must be >= 1; fix AUTOREPLY_CANDIDATES")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1; raise AUTOREPLY_MAX_NEW_TOKENS")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0; use do_sample=False for greedy decoding")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]; fix AUTOREPLY_TOP_P")
        if not self.fallback_reply.strip():
            raise ValueError("fallback_reply must not be blank; set AUTOREPLY_FALLBACK_REPLY")


@dataclass(frozen=True, slots=True)
class DraftRequest:
    """Everything the drafter needs for one reply, so one batch can mix accounts.

    `style` None: the drafter's own defaults. `adapter` None: the host's active adapter;
    "__base__": no adapter.
    """

    history: tuple[Turn, ...]
    text: str
    account: str = "default"
    style: ReplyStyle | None = None
    adapter: str | None = None


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
    a CARD carries `draft_id` so the channel can attach moderation buttons for it, and
    `own_reply` when there is no draft to approve: the message waits for a moderator's own
    reply (a handed-off chat, a flagged message)."""

    platform: str
    account: str
    chat_id: str
    text: str
    reply_to_message_id: str | None = None
    outbox_id: int | None = None
    kind: OutgoingKind = OutgoingKind.REPLY
    draft_id: int | None = None
    own_reply: bool = False


# --- moderation: what the queue shows and what an action did ---------------------------------


class ActorKind(StrEnum):
    CLI = "cli"
    TELEGRAM = "telegram"
    WEB = "web"
    POLICY = "policy"  # the service itself (auto-send)


class ActorRole(StrEnum):
    MODERATOR = "moderator"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Actor:
    """Someone acting on the queue. `accounts` None: every account; else only these names."""

    kind: ActorKind
    id: str
    display: str
    role: ActorRole = ActorRole.MODERATOR
    accounts: frozenset[str] | None = None

    def may_act_on(self, account: str) -> bool:
        return self.accounts is None or account in self.accounts


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A draft as moderators see it: the message it answers, its analysis and its verdict.

    `candidates` (best first) is filled only where one draft is shown (`get_item`), not in
    queue listings; it is empty for drafts made from a single sample.
    """

    draft_id: int
    status: DraftStatus
    created_at: datetime
    platform: str
    account: str  # the account's name
    chat_id: str
    user_name: str | None
    message_id: int
    message_text: str
    draft_text: str
    raw_text: str
    fallback_used: bool
    intent: str | None
    intent_score: float | None
    sentiment: str | None
    sentiment_score: float | None
    verdict: str
    toxicity: float
    flags: tuple[str, ...]
    input_flags: tuple[str, ...]
    model_version: str
    account_id: int
    conversation_id: int
    candidates: tuple[Candidate, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.verdict == VerdictAction.BLOCK.value


@dataclass(frozen=True, slots=True)
class AuditEntry:
    moderator: str
    action: str
    before_text: str | None
    after_text: str | None
    note: str | None
    created_at: datetime
    account: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An outbox row as the CLI lists it (replies in doubt)."""

    id: int
    status: OutboxStatus
    platform: str
    account: str
    chat_id: str
    text: str
    attempts: int
    last_error: str | None
    draft_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a moderation action did. `outbox_id` is set when a reply was queued for sending;
    `conversation_id` names the chat whose sender must wake (reply or pause target)."""

    account: str
    status: str
    message: str
    draft_id: int | None = None
    conversation_id: int | None = None
    outbox_id: int | None = None
    delivered: bool = False  # the reply went out at once (console accounts, from the CLI)


@dataclass(frozen=True, slots=True)
class AccountState:
    """An account's runtime state as the database holds it, with its queue depth."""

    id: int
    name: str
    platform: str
    handle: str
    paused: bool
    queued: int = 0
    in_doubt: int = 0
    health: str | None = None  # ok / down / stopped, as the serving process last wrote it
    health_note: str | None = None
    health_at: datetime | None = None
