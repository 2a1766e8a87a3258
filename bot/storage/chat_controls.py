"""Runtime state the decision policy keeps per user and per chat: bans, strikes, handoffs and
away messages; and the moderators' hold on outbox rows (cancel a delayed send) and on the
queue (expire stale drafts).

Every change is one conditional UPDATE that reports whether it changed anything, so a second
moderator doing the same thing learns that it was already done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from bot.domain import (
    HANDOFF_FLAG,
    Actor,
    ModerationKind,
    OutboxRow,
    VerdictAction,
    as_utc,
    utcnow,
)
from bot.storage import drafts as draft_store
from bot.storage import models as m
from bot.storage import outbox_store
from bot.storage.rows import get_or_create


@dataclass(frozen=True, slots=True)
class Controls:
    """What the policy needs to know about a message's sender and chat."""

    banned: bool
    handed_off: bool
    away_sent_at: datetime | None


def controls(
    session: Session, conversation_id: int, user_id: int | None, *, lock: bool = False
) -> Controls:
    """`lock`: hold the chat's and the user's rows until the caller commits (PostgreSQL; SQLite
    units of work run one at a time anyway), so a ban or handoff either came before and is
    seen here, or waits and then finds what the caller committed. FOR NO KEY UPDATE: new
    messages that only reference these rows are not held up."""
    locked = {"key_share": True} if lock else None
    conversation = session.get_one(
        m.Conversation, conversation_id, with_for_update=locked, populate_existing=lock
    )
    user = (
        session.get(m.PlatformUser, user_id, with_for_update=locked, populate_existing=lock)
        if user_id
        else None
    )
    return Controls(
        banned=bool(user and user.banned_at is not None),
        handed_off=conversation.handed_off_at is not None,
        away_sent_at=as_utc(conversation.away_sent_at) if conversation.away_sent_at else None,
    )


def is_banned(session: Session, user_id: int) -> bool:
    return (
        session.scalar(select(m.PlatformUser.banned_at).where(m.PlatformUser.id == user_id))
        is not None
    )


def set_banned(
    session: Session, account_id: int, platform_user_id: str, banned: bool, *, by: Actor
) -> bool:
    """Ban or unban a user of an account (a user never seen yet is created, so a ban can come
    first). A ban also stops what is on its way to them (`_stop_on_the_way`, audited as done
    `by` the banning actor). False when they already were in that state."""
    user = get_or_create(
        session,
        m.PlatformUser,
        {"account_id": account_id, "platform_user_id": platform_user_id},
        {},
    )
    already = (
        m.PlatformUser.banned_at.is_not(None) if banned else m.PlatformUser.banned_at.is_(None)
    )
    result = session.execute(
        update(m.PlatformUser)
        .where(m.PlatformUser.id == user.id, ~already)
        .values(banned_at=utcnow() if banned else None)
    )
    changed = bool(getattr(result, "rowcount", 0))
    if changed and banned:
        theirs = select(m.Message.id).where(m.Message.user_id == user.id)
        _stop_on_the_way(session, account_id, theirs, by, "the user was banned")
    return changed


def _stop_on_the_way(
    session: Session,
    account_id: int,
    messages: Select[int],
    by: Actor,
    why: str,
    *,
    wait_for_person: bool = False,
) -> None:
    """Stop the answers to `messages` (ids of inbound messages) not sent yet: replies waiting
    out a send delay (or a retry) are cancelled and drafts still queued stopped, each one
    audited as done `by` the actor who banned or handed off (note: `why`).

    A ban stops everything. A handoff (`wait_for_person`) keeps every one of those messages
    in the queue instead: items already waiting for a moderator's own reply stay as they
    are, and a stopped draft becomes such an item (`_wait_for_person`), so no message the bot
    meant to answer is left without an answer or a queue item.
    """
    note = f"{why}: the bot's draft was dropped; a moderator answers" if wait_for_person else why
    pending = session.execute(
        select(m.OutboxItem.id, m.OutboxItem.draft_id)
        .where(
            m.OutboxItem.kind == m.OutboxKind.REPLY,
            m.OutboxItem.status == m.OutboxStatus.PENDING,
            m.OutboxItem.reply_to_id.in_(messages),
        )
        .order_by(m.OutboxItem.id)
    ).all()
    for outbox_id, draft_id in pending:
        if cancel_send(session, outbox_id):
            draft_store.audit(
                session,
                account_id=account_id,
                actor=by,
                action=ModerationKind.CANCEL,
                target_kind="outbox",
                target=str(outbox_id),
                note=note,
            )
            if wait_for_person and draft_id is not None:
                _wait_for_person(session, draft_id, m.DraftStatus.REJECTED)
    queued = session.execute(
        select(m.ReplyDraft.id, m.ReplyDraft.model_version)
        .where(m.ReplyDraft.message_id.in_(messages), m.ReplyDraft.status == m.DraftStatus.QUEUED)
        .order_by(m.ReplyDraft.id)
    ).all()
    for draft_id, model in queued:
        if not wait_for_person:
            stopped = _set_status(session, draft_id, m.DraftStatus.REJECTED)
        elif model == HANDOFF_FLAG:
            continue  # already waits for a person's own reply
        else:
            stopped = _wait_for_person(session, draft_id, m.DraftStatus.QUEUED)
        if stopped:  # a turned draft is audited as part of the handoff, not as a reject
            draft_store.audit(
                session,
                account_id=account_id,
                actor=by,
                action=ModerationKind.HANDOFF if wait_for_person else ModerationKind.REJECT,
                draft_id=draft_id,
                note=note,
            )


def _set_status(session: Session, draft_id: int, status: m.DraftStatus) -> bool:
    """Move a queued draft to `status`; False when it no longer was queued."""
    result = session.execute(
        update(m.ReplyDraft)
        .where(m.ReplyDraft.id == draft_id, m.ReplyDraft.status == m.DraftStatus.QUEUED)
        .values(status=status)
    )
    return bool(getattr(result, "rowcount", 0))


def _wait_for_person(session: Session, draft_id: int, status: m.DraftStatus) -> bool:
    """Turn a draft (in `status`) into an item waiting for a moderator's own reply, as a
    handed-off chat's new messages are: no text to approve (the model's output stays in
    `raw_text`), flagged `handoff`, queued. The draft's card, if it had one, still works:
    Approve is refused, Edit asks for the moderator's answer. False when it no longer was
    in `status`."""
    draft = session.get_one(m.ReplyDraft, draft_id)
    flags = [*(draft.flags or ()), HANDOFF_FLAG]
    result = session.execute(
        update(m.ReplyDraft)
        .where(m.ReplyDraft.id == draft_id, m.ReplyDraft.status == status)
        .values(
            status=m.DraftStatus.QUEUED,
            text="",
            model_version=HANDOFF_FLAG,
            verdict=VerdictAction.REVIEW,
            flags=list(dict.fromkeys(flags)),
        )
    )
    return bool(getattr(result, "rowcount", 0))


def add_strike(session: Session, user_id: int) -> None:
    session.execute(
        update(m.PlatformUser)
        .where(m.PlatformUser.id == user_id)
        .values(strikes=m.PlatformUser.strikes + 1)
    )


def strikes(session: Session, account_id: int, platform_user_id: str) -> int:
    return int(
        session.scalar(
            select(m.PlatformUser.strikes).where(
                m.PlatformUser.account_id == account_id,
                m.PlatformUser.platform_user_id == platform_user_id,
            )
        )
        or 0
    )


def set_handed_off(session: Session, conversation_id: int, handed_off: bool, *, by: Actor) -> bool:
    """Hand a chat to people (True) or back to the bot. Handing off also stops the bot's
    answers in that chat not sent yet, and each of those messages waits for a moderator's own
    reply instead (`_stop_on_the_way`, audited as done `by` the actor). False when it already
    was."""
    column = m.Conversation.handed_off_at
    already = column.is_not(None) if handed_off else column.is_(None)
    result = session.execute(
        update(m.Conversation)
        .where(m.Conversation.id == conversation_id, ~already)
        .values(handed_off_at=utcnow() if handed_off else None)
    )
    changed = bool(getattr(result, "rowcount", 0))
    if changed and handed_off:
        chat = session.get_one(m.Conversation, conversation_id)
        inbound = select(m.Message.id).where(
            m.Message.conversation_id == conversation_id,
            m.Message.direction == m.Direction.INBOUND,
        )
        why = "the chat was handed to people"
        _stop_on_the_way(session, chat.account_id, inbound, by, why, wait_for_person=True)
    return changed


def mark_away_sent(session: Session, conversation_id: int, when: datetime) -> None:
    session.execute(
        update(m.Conversation).where(m.Conversation.id == conversation_id).values(away_sent_at=when)
    )


def cancel_send(session: Session, outbox_id: int) -> bool:
    """Stop a reply that has not gone out yet (a delayed auto reply, say); its draft becomes
    rejected so it never counts as a good reply. False when it is no longer pending."""
    row = session.get(m.OutboxItem, outbox_id)
    if row is None or row.kind is not m.OutboxKind.REPLY:
        return False  # a moderators' card or notice is not the user's reply: never cancelled
    result = session.execute(
        update(m.OutboxItem)
        .where(m.OutboxItem.id == outbox_id, m.OutboxItem.status == m.OutboxStatus.PENDING)
        .values(status=m.OutboxStatus.CANCELLED, last_error="cancelled by a moderator")
    )
    if not getattr(result, "rowcount", 0):
        return False
    if row.draft_id is not None:
        session.execute(
            update(m.ReplyDraft)
            .where(m.ReplyDraft.id == row.draft_id)
            .values(status=m.DraftStatus.REJECTED)
        )
    return True


def cancel_pending_replies(session: Session, conversation_id: int) -> int:
    """Cancel a chat's replies still waiting to go out (a send delay), drafts rejected: what
    the policy sends at once (a safe response, a handoff acknowledgement) must not queue
    behind them, and a cheerful draft must not follow it. Returns how many."""
    ids = session.scalars(
        select(m.OutboxItem.id).where(
            m.OutboxItem.conversation_id == conversation_id,
            m.OutboxItem.kind == m.OutboxKind.REPLY,
            m.OutboxItem.status == m.OutboxStatus.PENDING,
        )
    ).all()
    return sum(cancel_send(session, outbox_id) for outbox_id in ids)


def pending_replies(
    session: Session, accounts: tuple[str, ...] | None, limit: int = 50
) -> list[OutboxRow]:
    """Replies still waiting to go out (delayed or retrying), oldest first: what can be
    cancelled. `updated_at` is when each is due."""
    return outbox_store.list_rows(
        session,
        (m.OutboxStatus.PENDING,),
        limit,
        accounts,
        kinds=(m.OutboxKind.REPLY,),
        due_time=True,
    )


def outbox_account(session: Session, outbox_id: int) -> tuple[int, str] | None:
    """The account (id, name) an outbox row belongs to."""
    row = session.execute(
        select(m.Account.id, m.Account.name)
        .join(m.OutboxItem, m.OutboxItem.account_id == m.Account.id)
        .where(m.OutboxItem.id == outbox_id)
    ).first()
    return (row[0], row[1]) if row else None


def expire_queued(session: Session, older_than: timedelta) -> list[tuple[int, int]]:
    """Queued drafts created before now - `older_than` become expired; returns (draft id,
    account id) of each one this call expired."""
    cutoff = utcnow() - older_than
    inbound = m.Message
    stale = session.execute(
        select(m.ReplyDraft.id, inbound.account_id)
        .join(inbound, m.ReplyDraft.message_id == inbound.id)
        .where(m.ReplyDraft.status == m.DraftStatus.QUEUED, m.ReplyDraft.created_at < cutoff)
        .order_by(m.ReplyDraft.id)
    ).all()
    expired = []
    for draft_id, account_id in stale:
        result = session.execute(
            update(m.ReplyDraft)
            .where(m.ReplyDraft.id == draft_id, m.ReplyDraft.status == m.DraftStatus.QUEUED)
            .values(status=m.DraftStatus.EXPIRED)
        )
        if getattr(result, "rowcount", 0):
            expired.append((draft_id, account_id))
    return expired
