"""Stored messages for the dashboard's Conversations page: a filtered search (newest first, paged
by message id) and one conversation's whole thread with what the pipeline and the moderators
did with each message.

Read-only. Each call is a fixed number of queries whatever the page size (no query per row);
callers pass the accounts the reader may see (`scope`, None = every account), and a
conversation outside it reads as absent.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from bot.domain import Sentiment, as_utc
from bot.storage import models as m

Scope = Collection[str] | None
THREAD_LIMIT = 500
# The audit actions that put a draft's text into the chat (or stopped it), newest wins.
PRODUCING = (
    m.ModerationKind.AUTO_SEND,
    m.ModerationKind.APPROVE,
    m.ModerationKind.EDIT,
    m.ModerationKind.OVERRIDE,
    m.ModerationKind.REPLY,
    m.ModerationKind.REJECT,
    m.ModerationKind.EXPIRE,
    m.ModerationKind.CANCEL,
)


@dataclass(frozen=True, slots=True)
class Filters:
    """Every field narrows the search; None or blank: no condition. `user` is a platform user
    id (exact) or part of a display name; `chat` a chat id (exact) or part of its title;
    `text` a case-insensitive part of the message text. `until` is exclusive."""

    account: str | None = None
    user: str | None = None
    chat: str | None = None
    intent: str | None = None
    sentiment: str | None = None
    text: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    message_id: int
    conversation_id: int
    account: str
    chat_id: str
    chat_title: str | None
    inbound: bool
    sender_id: str | None
    sender_name: str | None
    text: str
    withheld: bool  # an inbound message stored without text (its sender was banned)
    intent: str | None
    sentiment: str | None
    decision: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class HitPage:
    hits: list[Hit]
    older: int | None  # pass as `before` for the next (older) page; None: this is the last


@dataclass(frozen=True, slots=True)
class DraftInfo:
    """A draft made for an inbound message, or the one a bot message was sent from, with the
    latest audited action on it (who approved, edited or rejected it)."""

    draft_id: int
    status: str
    verdict: str
    flags: tuple[str, ...]
    adapter: str | None
    model: str
    action: str | None
    actor: str | None


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    id: int
    inbound: bool
    sender_id: str | None
    sender_name: str | None
    text: str
    withheld: bool
    at: datetime
    edit_version: int
    intent: str | None
    intent_score: float | None
    sentiment: str | None
    sentiment_score: float | None
    input_verdict: str | None
    input_flags: tuple[str, ...]
    decision: str | None
    decision_reason: str | None
    drafts: tuple[DraftInfo, ...]  # inbound: the drafts made for it
    sent_from: DraftInfo | None  # outbound: the draft it was sent from (None: a policy text)


@dataclass(frozen=True, slots=True)
class Sender:
    user_id: str
    name: str | None
    banned: bool


@dataclass(frozen=True, slots=True)
class Thread:
    conversation_id: int
    account: str
    platform: str
    chat_id: str
    chat_title: str | None
    chat_kind: str
    handed_off: bool
    paused: bool
    messages: list[ThreadMessage]  # oldest first
    senders: list[Sender]
    truncated: bool  # older messages exist beyond THREAD_LIMIT


def _at(message: m.Message) -> datetime:
    return as_utc(message.sent_at or message.created_at)


def _withheld(message: m.Message) -> bool:
    return message.direction is m.Direction.INBOUND and message.text == ""


# The search's row: message, account name, conversation, sender, analysis.
HitSelect = Select[m.Message, str, m.Conversation, m.PlatformUser, m.Analysis]


def _scoped(query: HitSelect, scope: Scope) -> HitSelect:
    return query if scope is None else query.where(m.Account.name.in_(sorted(scope)))


def _filtered(query: HitSelect, f: Filters) -> HitSelect:
    if f.account:
        query = query.where(m.Account.name == f.account)
    if f.user:
        query = query.where(
            or_(
                m.PlatformUser.platform_user_id == f.user.strip(),
                m.PlatformUser.display_name.icontains(f.user.strip(), autoescape=True),
            )
        )
    if f.chat:
        query = query.where(
            or_(
                m.Conversation.chat_id == f.chat.strip(),
                m.Conversation.title.icontains(f.chat.strip(), autoescape=True),
            )
        )
    if f.intent:
        query = query.where(m.Analysis.intent == f.intent.strip())
    if f.sentiment:
        query = query.where(m.Analysis.sentiment == Sentiment(f.sentiment))
    if f.text:
        query = query.where(m.Message.text.icontains(f.text, autoescape=True))
    written = func.coalesce(m.Message.sent_at, m.Message.created_at)
    if f.since is not None:
        query = query.where(written >= f.since)
    if f.until is not None:
        query = query.where(written < f.until)
    return query


def search(
    session: Session, filters: Filters, scope: Scope, *, before: int | None = None, limit: int = 50
) -> HitPage:
    """Messages matching every filter, newest first; `before` (a message id) pages back."""
    query = (
        select(m.Message, m.Account.name, m.Conversation, m.PlatformUser, m.Analysis)
        .join(m.Account, m.Account.id == m.Message.account_id)
        .join(m.Conversation, m.Conversation.id == m.Message.conversation_id)
        .outerjoin(m.PlatformUser, m.PlatformUser.id == m.Message.user_id)
        .outerjoin(m.Analysis, m.Analysis.message_id == m.Message.id)
        .order_by(m.Message.id.desc())
        .limit(limit + 1)
    )
    query = _filtered(_scoped(query, scope), filters)
    if before is not None:
        query = query.where(m.Message.id < before)
    rows = session.execute(query).all()
    hits = [
        Hit(
            message_id=message.id,
            conversation_id=conversation.id,
            account=account,
            chat_id=conversation.chat_id,
            chat_title=conversation.title,
            inbound=message.direction is m.Direction.INBOUND,
            sender_id=user.platform_user_id if user is not None else None,
            sender_name=user.display_name if user is not None else None,
            text=message.text,
            withheld=_withheld(message),
            intent=analysis.intent if analysis is not None else None,
            sentiment=analysis.sentiment.value if analysis is not None else None,
            decision=message.decision.value if message.decision is not None else None,
            at=_at(message),
        )
        for message, account, conversation, user, analysis in rows[:limit]
    ]
    older = hits[-1].message_id if len(rows) > limit else None
    return HitPage(hits, older)


def account_names(session: Session, scope: Scope) -> list[str]:
    """The stored accounts the reader may see, by name (for the account filter)."""
    query = select(m.Account.name).order_by(m.Account.name)
    if scope is not None:
        query = query.where(m.Account.name.in_(sorted(scope)))
    return list(session.scalars(query))


def locate(session: Session, conversation_id: int, scope: Scope) -> tuple[str, str] | None:
    """(account name, chat id) of a conversation the reader may see; None otherwise."""
    query = (
        select(m.Account.name, m.Conversation.chat_id)
        .join(m.Account, m.Account.id == m.Conversation.account_id)
        .where(m.Conversation.id == conversation_id)
    )
    if scope is not None:
        query = query.where(m.Account.name.in_(sorted(scope)))
    row = session.execute(query).first()
    return (row[0], row[1]) if row is not None else None


def thread(
    session: Session, conversation_id: int, scope: Scope, *, limit: int = THREAD_LIMIT
) -> Thread | None:
    """The conversation's last `limit` messages, oldest first, each with its analysis and
    drafts; None when it does not exist or lies outside `scope`."""
    head = session.execute(
        select(m.Conversation, m.Account.name, m.Account.platform)
        .join(m.Account, m.Account.id == m.Conversation.account_id)
        .where(m.Conversation.id == conversation_id)
    ).first()
    if head is None or (scope is not None and head[1] not in scope):
        return None
    conversation, account, platform = head
    rows = session.execute(
        select(m.Message, m.PlatformUser, m.Analysis)
        .outerjoin(m.PlatformUser, m.PlatformUser.id == m.Message.user_id)
        .outerjoin(m.Analysis, m.Analysis.message_id == m.Message.id)
        .where(m.Message.conversation_id == conversation_id)
        .order_by(m.Message.id.desc())
        .limit(limit + 1)
    ).all()
    truncated = len(rows) > limit
    rows = list(reversed(rows[:limit]))
    made_for, sent_from = _drafts(session, [message.id for message, _, _ in rows])
    messages: list[ThreadMessage] = []
    senders: dict[str, Sender] = {}
    for message, user, analysis in rows:
        if user is not None:
            senders[user.platform_user_id] = Sender(
                user.platform_user_id, user.display_name, user.banned_at is not None
            )
        messages.append(
            ThreadMessage(
                id=message.id,
                inbound=message.direction is m.Direction.INBOUND,
                sender_id=user.platform_user_id if user is not None else None,
                sender_name=user.display_name if user is not None else None,
                text=message.text,
                withheld=_withheld(message),
                at=_at(message),
                edit_version=message.edit_version,
                intent=analysis.intent if analysis else None,
                intent_score=analysis.intent_score if analysis else None,
                sentiment=analysis.sentiment.value if analysis else None,
                sentiment_score=analysis.sentiment_score if analysis else None,
                input_verdict=analysis.input_verdict.value if analysis else None,
                input_flags=tuple(analysis.input_flags or ()) if analysis else (),
                decision=message.decision.value if message.decision else None,
                decision_reason=message.decision_reason,
                drafts=tuple(made_for.get(message.id, ())),
                sent_from=sent_from.get(message.id),
            )
        )
    return Thread(
        conversation_id=conversation.id,
        account=account,
        platform=platform,
        chat_id=conversation.chat_id,
        chat_title=conversation.title,
        chat_kind=conversation.kind.value,
        handed_off=conversation.handed_off_at is not None,
        paused=conversation.paused,
        messages=messages,
        senders=sorted(senders.values(), key=lambda sender: sender.user_id),
        truncated=truncated,
    )


def _drafts(
    session: Session, message_ids: Sequence[int]
) -> tuple[dict[int, list[DraftInfo]], dict[int, DraftInfo]]:
    """Drafts made for these messages (by inbound id) and those sent as them (by outbound
    id), with the latest producing action on each: two queries for the whole thread."""
    if not message_ids:
        return {}, {}
    drafts = session.scalars(
        select(m.ReplyDraft)
        .where(
            or_(
                m.ReplyDraft.message_id.in_(message_ids),
                m.ReplyDraft.outbound_message_id.in_(message_ids),
            )
        )
        .order_by(m.ReplyDraft.id)
    ).all()
    last_action: dict[int | None, tuple[str | None, str | None]] = {}
    if drafts:
        actions = session.execute(
            select(
                m.ModerationAction.draft_id, m.ModerationAction.action, m.ModerationAction.moderator
            )
            .where(
                m.ModerationAction.draft_id.in_([draft.id for draft in drafts]),
                m.ModerationAction.action.in_(PRODUCING),
            )
            .order_by(m.ModerationAction.id)
        ).all()
        for draft_id, kind, moderator in actions:
            last_action[draft_id] = (kind.value, moderator)
    made_for: dict[int, list[DraftInfo]] = {}
    sent_from: dict[int, DraftInfo] = {}
    for draft in drafts:
        action, actor = last_action.get(draft.id, (None, None))
        info = DraftInfo(
            draft_id=draft.id,
            status=draft.status.value,
            verdict=draft.verdict.value,
            flags=tuple(draft.flags or ()),
            adapter=draft.adapter,
            model=draft.model_version,
            action=action,
            actor=actor,
        )
        made_for.setdefault(draft.message_id, []).append(info)
        if draft.outbound_message_id is not None:
            sent_from[draft.outbound_message_id] = info
    return made_for, sent_from
