"""Conversation history: accounts, users, chats, messages, processed updates and analyses.

Functions take an open Session; the caller owns the unit of work (`with db.session() as s:`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, aliased

from bot.domain import (
    Analysis,
    ChatKind,
    DecisionAction,
    Incoming,
    Role,
    Turn,
    Verdict,
    as_utc,
    utcnow,
)
from bot.storage import accounts, chat_controls
from bot.storage import models as m
from bot.storage.rows import get_or_create, insert_ignoring_conflicts


@dataclass(frozen=True, slots=True)
class Stored:
    """Where an incoming message landed. `duplicate` means it was already taken in before."""

    account_id: int
    conversation_id: int
    message_id: int
    user_id: int | None
    duplicate: bool


@dataclass(frozen=True, slots=True)
class ChatState:
    """Whether the bot may answer in a chat now: `paused` covers the account, the chat, and a
    user who blocked the bot in a private chat (in groups they can still be answered)."""

    paused: bool


def chat_state(session: Session, stored: Stored) -> ChatState:
    account = session.get_one(m.Account, stored.account_id)
    conversation = session.get_one(m.Conversation, stored.conversation_id)
    user = session.get(m.PlatformUser, stored.user_id) if stored.user_id else None
    blocked = bool(user and user.unreachable and conversation.kind == ChatKind.PRIVATE)
    return ChatState(account.paused or conversation.paused or blocked)


def storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL; keep a visible mark instead of failing the message."""
    return text.replace("\x00", "\ufffd")


def _ensure_user(session: Session, account_id: int, incoming: Incoming) -> int:
    user = get_or_create(
        session,
        m.PlatformUser,
        {"account_id": account_id, "platform_user_id": incoming.user_id},
        {"display_name": incoming.user_name},
    )
    if incoming.user_name and user.display_name != incoming.user_name and not user.erased:
        user.display_name = incoming.user_name
    if user.unreachable and incoming.chat_kind is ChatKind.PRIVATE:
        user.unreachable = False  # they write to us privately again, so they unblocked us
    return user.id


def _ensure_conversation(session: Session, account_id: int, incoming: Incoming) -> m.Conversation:
    return get_or_create(
        session,
        m.Conversation,
        {"account_id": account_id, "chat_id": incoming.chat_id},
        {"kind": incoming.chat_kind, "title": incoming.chat_title},
    )


def ensure_conversation_id(
    session: Session, account_id: int, chat_id: str, kind: ChatKind, title: str | None
) -> int:
    keys = {"account_id": account_id, "chat_id": chat_id}
    return get_or_create(session, m.Conversation, keys, {"kind": kind, "title": title}).id


def answered_recently(
    session: Session,
    conversation_id: int,
    user_id: int,
    *,
    before_message_id: int,
    within: timedelta,
) -> bool:
    """Did this user get a reply (sent or queued) in this chat within `within`?"""
    since = utcnow() - within
    latest = session.scalars(
        select(m.Message.handled_at)
        .where(
            m.Message.conversation_id == conversation_id,
            m.Message.user_id == user_id,
            m.Message.id < before_message_id,
            m.Message.decision.in_((DecisionAction.AUTO, DecisionAction.REVIEW)),
        )
        .order_by(m.Message.id.desc())
        .limit(1)
    ).first()
    return latest is not None and as_utc(latest) >= since


def ingest(session: Session, incoming: Incoming) -> Stored:
    """Store an incoming message exactly once.

    The processed-update row (when the platform gives an update id) and the message are written
    in the caller's transaction, so a crash leaves either both or neither. A redelivered update,
    or the same platform message at the same edit version, returns `duplicate=True`.
    """
    account = accounts.ensure(session, incoming.platform, incoming.account)
    if incoming.update_id is not None:
        fresh = insert_ignoring_conflicts(
            session,
            m.ProcessedUpdate,
            {"account_id": account.id, "update_id": incoming.update_id},
        )
        if not fresh:
            return _existing(session, account.id, incoming)
    conversation = _ensure_conversation(session, account.id, incoming)
    user_id = _ensure_user(session, account.id, incoming)
    # A banned user's messages are kept as metadata only: their text is never stored.
    text = "" if chat_controls.is_banned(session, user_id) else storable(incoming.text)
    reply_to_id = None
    if incoming.reply_to_message_id is not None:
        reply_to_id = session.scalars(
            select(m.Message.id)
            .where(
                m.Message.conversation_id == conversation.id,
                m.Message.platform_message_id == incoming.reply_to_message_id,
            )
            .order_by(m.Message.edit_version.desc())
            .limit(1)
        ).first()
    inserted = insert_ignoring_conflicts(
        session,
        m.Message,
        {
            "account_id": account.id,
            "conversation_id": conversation.id,
            "user_id": user_id,
            "direction": m.Direction.INBOUND,
            "platform_message_id": incoming.message_id,
            "edit_version": incoming.edit_version,
            "reply_to_id": reply_to_id,
            "text": text,
            "addressed": incoming.addressed,
            "sent_at": incoming.sent_at,
        },
    )
    message_id = _message_id(session, conversation.id, incoming)
    if incoming.update_id is not None:
        session.execute(
            update(m.ProcessedUpdate)
            .where(
                m.ProcessedUpdate.account_id == account.id,
                m.ProcessedUpdate.update_id == incoming.update_id,
            )
            .values(message_id=message_id)
        )
    if inserted:
        conversation.last_message_at = incoming.sent_at
    return Stored(account.id, conversation.id, message_id, user_id, duplicate=not inserted)


def _message_id(session: Session, conversation_id: int, incoming: Incoming) -> int:
    return session.scalars(
        select(m.Message.id).where(
            m.Message.conversation_id == conversation_id,
            m.Message.platform_message_id == incoming.message_id,
            m.Message.edit_version == incoming.edit_version,
        )
    ).one()


def _existing(session: Session, account_id: int, incoming: Incoming) -> Stored:
    processed = session.scalars(
        select(m.ProcessedUpdate).where(
            m.ProcessedUpdate.account_id == account_id,
            m.ProcessedUpdate.update_id == incoming.update_id,
        )
    ).one()
    message = session.get(m.Message, processed.message_id) if processed.message_id else None
    return Stored(
        account_id,
        message.conversation_id if message else 0,
        message.id if message else 0,
        message.user_id if message else None,
        duplicate=True,
    )


def record_update(session: Session, platform: str, account: str, update_id: int) -> bool:
    """Take in a delivery that carries no message to store. False if it was seen before."""
    info = accounts.ensure(session, platform, account)
    return insert_ignoring_conflicts(
        session, m.ProcessedUpdate, {"account_id": info.id, "update_id": update_id}
    )


def save_analysis(session: Session, message_id: int, analysis: Analysis, verdict: Verdict) -> None:
    """Store (or replace, when a message is re-processed after a crash) its analysis."""
    existing = session.scalars(
        select(m.Analysis).where(m.Analysis.message_id == message_id)
    ).first()
    row = existing or m.Analysis(message_id=message_id)
    row.intent = analysis.intent
    row.intent_score = analysis.intent_score
    row.sentiment = analysis.sentiment
    row.sentiment_score = analysis.sentiment_score
    row.scores = dict(analysis.scores)
    row.input_verdict = verdict.action
    row.input_toxicity = verdict.toxicity
    row.input_flags = list(verdict.flags)
    row.model_version = analysis.model
    session.add(row)


def forget_text(session: Session, message_id: int) -> None:
    """Keep a stored message as metadata only (its sender was banned meanwhile)."""
    session.execute(update(m.Message).where(m.Message.id == message_id).values(text=""))


def recent_turns(
    session: Session, conversation_id: int, before_message_id: int, limit: int
) -> list[Turn]:
    """The last `limit` turns of a conversation before a message, oldest first.

    Only the newest edit of each message counts, erased and banned users' text is skipped (and
    so are the bot's replies to them, which may repeat it), and outbound rows count only once
    they were sent.
    """
    if limit <= 0:
        return []
    asked = aliased(m.Message)
    asker = aliased(m.PlatformUser)
    rows = session.execute(
        select(
            m.Message,
            m.PlatformUser.display_name,
            m.PlatformUser.erased | m.PlatformUser.banned_at.is_not(None),
            asker.erased | asker.banned_at.is_not(None),
        )
        .outerjoin(m.PlatformUser, m.Message.user_id == m.PlatformUser.id)
        .outerjoin(asked, m.Message.reply_to_id == asked.id)
        .outerjoin(asker, asked.user_id == asker.id)
        .where(
            m.Message.conversation_id == conversation_id,
            m.Message.id < before_message_id,
        )
        .order_by(m.Message.id.desc())
        .limit(limit * 3)
    ).all()
    turns: list[Turn] = []
    seen: set[str] = set()
    for message, name, erased, asker_erased in rows:
        if erased or (asker_erased and message.direction is m.Direction.OUTBOUND):
            continue
        if message.direction is m.Direction.OUTBOUND:
            if message.sent_at is None:
                continue
            turns.append(Turn(Role.BOT, message.text))
        else:
            key = message.platform_message_id or f"row:{message.id}"
            if key in seen:  # an older edit of a message already taken
                continue
            seen.add(key)
            turns.append(Turn(Role.USER, message.text, name))
        if len(turns) == limit:
            break
    turns.reverse()
    return turns


def mark_handled(session: Session, message_id: int, decision: DecisionAction, reason: str) -> None:
    session.execute(
        update(m.Message)
        .where(m.Message.id == message_id)
        .values(decision=decision, decision_reason=reason[:256], handled_at=utcnow())
    )


def unhandled_inbound(session: Session, account_id: int, limit: int = 1000) -> list[int]:
    """Inbound messages stored but not yet decided (the process died in between)."""
    return list(
        session.scalars(
            select(m.Message.id)
            .where(
                m.Message.account_id == account_id,
                m.Message.direction == m.Direction.INBOUND,
                m.Message.handled_at.is_(None),
            )
            .order_by(m.Message.id)
            .limit(limit)
        )
    )


def load_incoming(session: Session, message_id: int) -> tuple[Incoming, Stored]:
    """Rebuild the Incoming of a stored message, to re-run the pipeline on it."""
    message = session.get(m.Message, message_id)
    if message is None:
        raise LookupError(message_id)
    conversation = session.get_one(m.Conversation, message.conversation_id)
    account = session.get_one(m.Account, message.account_id)
    user = session.get(m.PlatformUser, message.user_id) if message.user_id else None
    incoming = Incoming(
        platform=account.platform,
        account=account.name,
        chat_id=conversation.chat_id,
        message_id=message.platform_message_id or str(message.id),
        user_id=user.platform_user_id if user else "",
        text=message.text,
        user_name=user.display_name if user else None,
        chat_kind=ChatKind(conversation.kind),
        chat_title=conversation.title,
        addressed=message.addressed,
        edit_version=message.edit_version,
        sent_at=message.sent_at or message.created_at,
    )
    stored = Stored(account.id, conversation.id, message.id, message.user_id, duplicate=False)
    return incoming, stored


def record_outbound(
    session: Session,
    *,
    account_id: int,
    conversation_id: int,
    text: str,
    platform_message_id: str | None,
    reply_to_id: int | None,
    sent_at: datetime,
) -> int:
    row = m.Message(
        account_id=account_id,
        conversation_id=conversation_id,
        direction=m.Direction.OUTBOUND,
        platform_message_id=platform_message_id,
        reply_to_id=reply_to_id,
        text=text,
        addressed=False,
        sent_at=sent_at,
        handled_at=sent_at,
    )
    session.add(row)
    session.flush()
    return row.id


def prune_processed_updates(session: Session, older_than: timedelta) -> int:
    """Forget delivery ids past any redelivery window (Telegram keeps updates for 24 hours).

    Keeps the table small, and a bot idle for a week, whose update ids then restart at a
    random number, cannot have new updates mistaken for old ones. Messages stay deduplicated
    by their own platform ids.
    """
    result = session.execute(
        delete(m.ProcessedUpdate).where(m.ProcessedUpdate.processed_at < utcnow() - older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)
