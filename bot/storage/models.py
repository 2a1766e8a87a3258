"""SQLAlchemy 2.0 typed models. Schema changes go through Alembic only.

Enumerations are stored as VARCHAR with a named CHECK constraint rather than native PostgreSQL
enum types: adding a state later (a new draft status, say) is then an ordinary migration on both
backends, and no enum types are left behind by a downgrade.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.domain import (
    ChatKind,
    DecisionAction,
    DraftStatus,
    ModerationKind,
    OutboxStatus,
    OutgoingKind,
    Sentiment,
    VerdictAction,
)

OutboxKind = OutgoingKind  # what an outbox row delivers; stored as outbox.kind
# Re-exported: storage callers name the enums through this module.
__all__ = ["DraftStatus", "ModerationKind", "OutboxKind", "OutboxStatus"]

# Named constraints make Alembic batch mode (SQLite) and downgrades deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Direction(enum.StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"


class AdapterStatus(enum.StrEnum):
    CANDIDATE = "candidate"
    ACTIVE = "active"
    RETIRED = "retired"
    REJECTED = "rejected"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"  # the service stopped it (shutdown) or its runner died


TZDateTime = DateTime(timezone=True)


class Account(Base):
    """One bot identity on one platform (a Telegram bot, a Mastodon account).

    `name` is the account's name in the config (unique); `handle` the platform's own id (for
    Telegram the bot id). Settings such as persona and mode live in the config, not here: the
    database holds runtime state only (pause, bans, the active adapter).
    """

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("platform", "handle"), UniqueConstraint("name"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(128))
    # The serving process's view of its channel: ok / down / stopped, with why and when;
    # `health_at` doubles as a heartbeat, so a dead process shows up as stale.
    health: Mapped[str | None] = mapped_column(String(16))
    health_note: Mapped[str | None] = mapped_column(Text)
    health_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())


class PlatformUser(Base):
    """A person on the platform, as seen by one account. `erased` keeps the row, drops the data."""

    __tablename__ = "platform_users"
    __table_args__ = (UniqueConstraint("account_id", "platform_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(256))
    erased: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Set while moderators ban the user: their messages are kept as metadata only.
    banned_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    # Messages a policy rule counted against the user (abuse, by default).
    strikes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())


class Conversation(Base):
    """One chat (a DM or a group) of one account."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("account_id", "chat_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[ChatKind] = mapped_column(_enum(ChatKind, "chat_kind"))
    title: Mapped[str | None] = mapped_column(String(256))
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Set while the chat is handed to people (the user asked for one): no drafts meanwhile.
    handed_off_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    # When the away message (outside business hours) was last sent here.
    away_sent_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())
    last_message_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class Message(Base):
    """Inbound and outbound messages in one table.

    An edit on the platform reuses the message id, so edits are stored as new rows with a higher
    `edit_version`. Outbound rows get their platform id once sent.
    """

    __tablename__ = "messages"
    __table_args__ = (
        # Named by hand: the conventional name is 71 characters, which PostgreSQL (63 at most)
        # would cut to a hashed name that differs from SQLite's.
        UniqueConstraint(
            "account_id",
            "conversation_id",
            "platform_message_id",
            "edit_version",
            name="uq_messages_platform_message_edit_version",
        ),
        Index("ix_messages_conversation_created", "conversation_id", "id"),
        Index("ix_messages_unhandled", "direction", "handled_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("platform_users.id", ondelete="SET NULL")
    )
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"))
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    edit_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    addressed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Set when the pipeline has finished with an inbound message (in the same transaction as
    # its draft and outbox row); inbound rows still NULL after a crash are picked up on start.
    decision: Mapped[DecisionAction | None] = mapped_column(_enum(DecisionAction, "decision"))
    decision_reason: Mapped[str | None] = mapped_column(String(256))
    handled_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())

    analysis: Mapped[Analysis | None] = relationship(back_populates="message", uselist=False)


class ProcessedUpdate(Base):
    """A platform delivery (update id, numbered per bot) already taken in: redeliveries no-op."""

    __tablename__ = "processed_updates"
    __table_args__ = (UniqueConstraint("account_id", "update_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    update_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    processed_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())


class Analysis(Base):
    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    intent: Mapped[str] = mapped_column(String(32))
    intent_score: Mapped[float] = mapped_column(Float)
    sentiment: Mapped[Sentiment] = mapped_column(_enum(Sentiment, "sentiment"))
    sentiment_score: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    input_verdict: Mapped[VerdictAction] = mapped_column(_enum(VerdictAction, "verdict"))
    input_toxicity: Mapped[float] = mapped_column(Float, default=0.0)
    input_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    model_version: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())

    message: Mapped[Message] = relationship(back_populates="analysis")


class ReplyDraft(Base):
    """A generated reply to one inbound message, with the gate's verdict and its fate."""

    __tablename__ = "reply_drafts"
    __table_args__ = (Index("ix_reply_drafts_status", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    raw_text: Mapped[str] = mapped_column(Text)
    fallback_used: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[DraftStatus] = mapped_column(_enum(DraftStatus, "draft_status"))
    verdict: Mapped[VerdictAction] = mapped_column(_enum(VerdictAction, "verdict"))
    toxicity: Mapped[float] = mapped_column(Float, default=0.0)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    model_version: Mapped[str] = mapped_column(String(256))
    adapter: Mapped[str | None] = mapped_column(String(128))
    outbound_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        TZDateTime, server_default=func.now(), onupdate=func.now()
    )

    message: Mapped[Message] = relationship(foreign_keys=[message_id])


class DraftCandidate(Base):
    """One sampled reply of a best-of-n draft, kept for moderators and as a learning negative.

    `rank` 0 is the best (the draft's text unless the fallback stood in). `dropped` holds a
    `DropReason` value, or NULL for the candidate that was used. It is a plain VARCHAR without
    a CHECK, so a new reason needs no migration; readers validate it through `DropReason`.
    The unique (draft_id, rank) constraint doubles as the index for a draft's candidates.
    """

    __tablename__ = "draft_candidates"
    __table_args__ = (UniqueConstraint("draft_id", "rank"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("reply_drafts.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    raw_text: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    new_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dropped: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())


class ModerationAction(Base):
    """Audit trail: who did what to which target, with the text before and after.

    Covers actions without a draft too (pause, resume, refusals), so `draft_id` is optional
    and the target is named by `target_kind` + `target`. Rows outlive their draft: deleting a
    draft only clears `draft_id`.
    """

    __tablename__ = "moderation_actions"
    __table_args__ = (Index("ix_moderation_actions_account", "account_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("reply_drafts.id", ondelete="SET NULL"))
    target_kind: Mapped[str] = mapped_column(String(16), default="draft", server_default="draft")
    target: Mapped[str | None] = mapped_column(String(128))
    actor_kind: Mapped[str] = mapped_column(String(16), default="cli", server_default="cli")
    actor_id: Mapped[str | None] = mapped_column(String(128))
    moderator: Mapped[str] = mapped_column(String(128))
    action: Mapped[ModerationKind] = mapped_column(_enum(ModerationKind, "moderation_kind"))
    before_text: Mapped[str | None] = mapped_column(Text)
    after_text: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())


class Adapter(Base):
    """A LoRA adapter version on disk (peft save_pretrained layout plus autoreply.json).

    One row per version: `kind` is reply, intent, sentiment or safety; `version` counts per
    (account, kind) from 1. At most one row per (account, kind) is active; promote retires it,
    rollback restores the newest retired one. `parent_id` is the adapter training started from.
    """

    __tablename__ = "adapters"
    __table_args__ = (
        UniqueConstraint("name"),
        Index("ix_adapters_account_kind_status", "account_id", "kind", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    path: Mapped[str] = mapped_column(Text)
    base_model: Mapped[str] = mapped_column(Text)
    data_hash: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=dict)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("adapters.id", ondelete="SET NULL"))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[AdapterStatus] = mapped_column(_enum(AdapterStatus, "adapter_status"))
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())
    promoted_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class TrainingRun(Base):
    """One export-train-evaluate run (manual or nightly), whatever its outcome."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"))
    adapter_id: Mapped[int | None] = mapped_column(ForeignKey("adapters.id", ondelete="SET NULL"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class LabelExample(Base):
    """A text with its true label for one classifier task (intent, sentiment or safety).

    Moderators' corrections from the queue carry `message_id` (one row per message and task:
    a later correction replaces the earlier one); imported files carry `source` only.
    `account_id` NULL means the example serves every account.
    """

    __tablename__ = "label_examples"
    __table_args__ = (
        UniqueConstraint("message_id", "task"),
        Index("ix_label_examples_account_task", "account_id", "task"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())


class Lease(Base):
    """A named lease that one process at a time may hold (the nightly runner, the scheduler).

    Taken or renewed by a conditional UPDATE (or the first INSERT), so it works the same on
    SQLite and PostgreSQL; a holder that dies loses it when `expires_at` passes.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(TZDateTime)
    expires_at: Mapped[datetime] = mapped_column(TZDateTime)


class OutboxItem(Base):
    """A reply waiting to be sent. Rows move pending -> sending -> sent / failed / unknown.

    `unknown` is a send that was in flight when the process died: the platform may or may not
    have delivered it, so it is never resent automatically and is shown to moderators.
    Order within a conversation is the order of `id`.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_conversation", "status", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("reply_drafts.id", ondelete="SET NULL"))
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    kind: Mapped[OutboxKind] = mapped_column(
        _enum(OutboxKind, "outbox_kind"), default=OutboxKind.REPLY, server_default="reply"
    )
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus, "outbox_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    outbound_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        TZDateTime, server_default=func.now(), onupdate=func.now()
    )
    sent_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class WebUser(Base):
    """A dashboard user (moderator or operator). `accounts` None: may act on every account."""

    __tablename__ = "web_users"
    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint("role IN ('moderator', 'operator')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id, argon2-cffi's encoded form
    role: Mapped[str] = mapped_column(String(16))
    accounts: Mapped[list[str] | None] = mapped_column(JSON)
    # The user's own platform identity: one-time login links go only to this private chat.
    platform: Mapped[str | None] = mapped_column(String(32))
    platform_user_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())
    disabled_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class WebLoginLink(Base):
    """A one-time login link. Only the token's SHA-256 is stored; `used_at` makes it single-use."""

    __tablename__ = "web_login_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(TZDateTime)
    used_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, server_default=func.now())


class TopicRun(Base):
    """One fit of the topics job for one account: its window and the topics it found (JSON)."""

    __tablename__ = "topic_runs"
    __table_args__ = (Index("ix_topic_runs_account", "account_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    fitted_at: Mapped[datetime] = mapped_column(TZDateTime)
    window_start: Mapped[datetime] = mapped_column(TZDateTime)
    window_end: Mapped[datetime] = mapped_column(TZDateTime)
    messages: Mapped[int] = mapped_column(Integer)
    topics: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
