"""Outbox rows: the durable half of sending. See bot/outbox.py for the delivery loop.

Every state change is one conditional UPDATE, so two workers (or two processes on PostgreSQL)
can never both claim one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.domain import HANDOFF_FLAG, ChatKind, OutboxRow, as_utc, utcnow
from bot.storage import history  # a module: history imports chat_controls, which imports this
from bot.storage import models as m

S = m.OutboxStatus

# A row erase-user caught while it was being sent keeps no text (bot/storage/privacy.py). A
# row without text is never sent again, and its delivery records no outbound message.
ERASED_TEXT = ""
ERASED_NOTE = "the user's data was erased while this was being sent; its text is not kept"


def user_tag(platform_user_id: str) -> str:
    """How a moderators' notice names the user it quotes: erase-user finds the notice by it."""
    return f"(user id {platform_user_id})"


@dataclass(frozen=True, slots=True)
class OutboxJob:
    """A claimed outbox row with what a channel needs to send it."""

    id: int
    account_id: int
    conversation_id: int
    platform: str
    account: str
    chat_id: str
    text: str
    reply_to_id: int | None
    reply_to_platform_id: str | None
    draft_id: int | None
    attempts: int
    kind: m.OutboxKind = m.OutboxKind.REPLY
    own_reply: bool = False  # a card for a message that waits for a moderator's own reply


def enqueue(
    session: Session,
    *,
    account_id: int,
    conversation_id: int,
    text: str,
    draft_id: int | None,
    reply_to_id: int | None,
    kind: m.OutboxKind = m.OutboxKind.REPLY,
    not_before: datetime | None = None,
) -> int:
    """Queue a row; `not_before` holds it back until then (an account's send delay)."""
    row = m.OutboxItem(
        account_id=account_id,
        conversation_id=conversation_id,
        draft_id=draft_id,
        reply_to_id=reply_to_id,
        kind=kind,
        text=text,
        status=S.PENDING,
        next_attempt_at=not_before,
    )
    session.add(row)
    session.flush()
    return row.id


def claim_next(session: Session, conversation_id: int) -> OutboxJob | datetime | None:
    """Claim the oldest pending row of a conversation.

    Returns the claimed job; or the time the oldest row becomes due, when it is waiting out a
    back-off (later rows wait behind it, to keep the chat's order); or None when none is pending.
    """
    head = session.scalars(
        select(m.OutboxItem)
        .where(m.OutboxItem.conversation_id == conversation_id, m.OutboxItem.status == S.PENDING)
        .order_by(m.OutboxItem.id)
        .limit(1)
    ).first()
    if head is None:
        return None
    due = head.next_attempt_at and as_utc(head.next_attempt_at)
    if due is not None and due > utcnow():
        return due
    attempts = head.attempts + 1  # read before the UPDATE, which refreshes `head` in place
    claimed = session.execute(
        update(m.OutboxItem)
        .where(m.OutboxItem.id == head.id, m.OutboxItem.status == S.PENDING)
        .values(status=S.SENDING, attempts=attempts)
    )
    if not getattr(claimed, "rowcount", 0):
        return utcnow()  # another worker took it; look again at once
    conversation = session.get_one(m.Conversation, head.conversation_id)
    account = session.get_one(m.Account, head.account_id)
    reply_to = session.get(m.Message, head.reply_to_id) if head.reply_to_id else None
    draft = session.get(m.ReplyDraft, head.draft_id) if head.kind is m.OutboxKind.CARD else None
    return OutboxJob(
        id=head.id,
        account_id=head.account_id,
        conversation_id=head.conversation_id,
        platform=account.platform,
        account=account.name,
        chat_id=conversation.chat_id,
        text=head.text,
        reply_to_id=head.reply_to_id,
        reply_to_platform_id=reply_to.platform_message_id if reply_to else None,
        draft_id=head.draft_id,
        attempts=attempts,
        kind=head.kind,
        own_reply=draft is not None and HANDOFF_FLAG in (draft.flags or ()),
    )


def mark_sent(session: Session, job: OutboxJob, platform_message_id: str) -> int | None:
    """Record delivery: the outbox row, the outbound message and the draft, in one go.

    A moderators' card is not part of any conversation's history: only its outbox row keeps
    its platform id (to find the draft when a moderator replies to the card). Nor is a row
    erase-user blanked while it was being sent: it is marked sent, and no text is recorded.
    """
    now = utcnow()
    message_id = None
    # The row as it is now, locked: erase-user may have blanked it mid-send (and removed the
    # message it answered); one that starts now waits for this commit, then removes it all.
    current = session.execute(
        select(m.OutboxItem.text, m.OutboxItem.reply_to_id, m.OutboxItem.draft_id)
        .where(m.OutboxItem.id == job.id)
        .with_for_update()
    ).first()
    if current is None:  # the row itself is gone (its account was deleted): nothing to record
        return None
    erased = current.text == ERASED_TEXT
    if job.kind is not m.OutboxKind.CARD and not erased:
        message_id = history.record_outbound(
            session,
            account_id=job.account_id,
            conversation_id=job.conversation_id,
            text=current.text,
            platform_message_id=platform_message_id,
            reply_to_id=current.reply_to_id,
            sent_at=now,
        )
    session.execute(
        update(m.OutboxItem)
        .where(m.OutboxItem.id == job.id)
        .values(
            status=S.SENT,
            platform_message_id=platform_message_id,
            outbound_message_id=message_id,
            sent_at=now,
            last_error=ERASED_NOTE if erased else None,
        )
    )
    if current.draft_id is not None and job.kind is m.OutboxKind.REPLY:
        session.execute(
            update(m.ReplyDraft)
            .where(m.ReplyDraft.id == current.draft_id)
            .values(status=m.DraftStatus.SENT, outbound_message_id=message_id)
        )
    return message_id


def mark_retry(session: Session, job_id: int, error: str, delay: timedelta) -> None:
    """Back to pending, due after `delay`; a row erase-user blanked meanwhile is cancelled
    instead (there is nothing left to send)."""
    sending = (m.OutboxItem.id == job_id, m.OutboxItem.status == S.SENDING)
    session.execute(
        update(m.OutboxItem)
        .where(*sending, m.OutboxItem.text != ERASED_TEXT)
        .values(status=S.PENDING, last_error=error[:2000], next_attempt_at=utcnow() + delay)
    )
    session.execute(
        update(m.OutboxItem)
        .where(*sending, m.OutboxItem.text == ERASED_TEXT)
        .values(status=S.CANCELLED)
    )


def mark_failed(session: Session, job: OutboxJob, error: str, status: m.OutboxStatus) -> None:
    """End a row as failed (will never work) or unknown (may have been delivered)."""
    session.execute(
        update(m.OutboxItem)
        .where(m.OutboxItem.id == job.id)
        .values(status=status, last_error=error[:2000])
    )
    if job.draft_id is not None and status is S.FAILED and job.kind is m.OutboxKind.REPLY:
        session.execute(
            update(m.ReplyDraft)
            .where(m.ReplyDraft.id == job.draft_id)
            .values(status=m.DraftStatus.FAILED)
        )


def recover_in_flight(session: Session, accounts: tuple[str, ...]) -> list[int]:
    """After a crash: rows of these accounts caught in `sending` are in doubt and become
    `unknown`. Only the accounts this process serves: another's restart never touches them.

    Platforms like Telegram take no idempotency key, so resending could post twice; a moderator
    decides instead (`autoreply queue list --unknown`).
    """
    ids = list(
        session.scalars(
            select(m.OutboxItem.id)
            .join(m.Account, m.OutboxItem.account_id == m.Account.id)
            .where(m.OutboxItem.status == S.SENDING, m.Account.name.in_(accounts))
        )
    )
    if ids:
        session.execute(
            update(m.OutboxItem)
            .where(m.OutboxItem.id.in_(ids), m.OutboxItem.status == S.SENDING)
            .values(
                status=S.UNKNOWN,
                last_error="process stopped while this reply was being sent; it may or may "
                "not have been delivered",
            )
        )
    return ids


def conversations_with_pending(session: Session, accounts: tuple[str, ...]) -> list[int]:
    """Conversations holding pending rows of the given accounts, oldest first."""
    stmt = (
        select(m.OutboxItem.conversation_id, func.min(m.OutboxItem.id))
        .join(m.Account, m.OutboxItem.account_id == m.Account.id)
        .where(m.OutboxItem.status == S.PENDING, m.Account.name.in_(accounts))
        .group_by(m.OutboxItem.conversation_id)
        .order_by(func.min(m.OutboxItem.id))
    )
    return [row[0] for row in session.execute(stmt).all()]


def list_rows(
    session: Session,
    statuses: tuple[m.OutboxStatus, ...],
    limit: int = 50,
    accounts: tuple[str, ...] | None = None,
    *,
    kinds: tuple[m.OutboxKind, ...] | None = None,
    due_time: bool = False,
) -> list[OutboxRow]:
    """Rows in `statuses` (of `kinds`, of `accounts`; None: any), oldest first. `due_time`:
    `updated_at` says when each row is due instead (a send delay or a back-off; rows due at
    once keep their last update)."""
    stmt = (
        select(m.OutboxItem, m.Account.platform, m.Account.name, m.Conversation.chat_id)
        .join(m.Account, m.OutboxItem.account_id == m.Account.id)
        .join(m.Conversation, m.OutboxItem.conversation_id == m.Conversation.id)
        .where(m.OutboxItem.status.in_(statuses))
        .order_by(m.OutboxItem.id)
        .limit(limit)
    )
    if accounts is not None:
        stmt = stmt.where(m.Account.name.in_(accounts))
    if kinds is not None:
        stmt = stmt.where(m.OutboxItem.kind.in_(kinds))
    return [
        OutboxRow(
            id=item.id,
            status=item.status,
            platform=platform,
            account=account,
            chat_id=chat_id,
            text=item.text,
            attempts=item.attempts,
            last_error=item.last_error,
            draft_id=item.draft_id,
            created_at=as_utc(item.created_at),
            updated_at=as_utc((due_time and item.next_attempt_at) or item.updated_at),
        )
        for item, platform, account, chat_id in session.execute(stmt).all()
    ]


def refund_attempt(session: Session, job_id: int) -> None:
    """A rate-limit wait is not a failed attempt: give the attempt back."""
    session.execute(
        update(m.OutboxItem)
        .where(m.OutboxItem.id == job_id, m.OutboxItem.attempts > 0)
        .values(attempts=m.OutboxItem.attempts - 1)
    )


def mark_conversation_unreachable(session: Session, conversation_id: int) -> None:
    """The platform refuses us for good (blocked by the user, removed from the group).

    In a private chat the user is marked unreachable; in a group the chat is paused. Either way
    no later reply is attempted until someone changes it.
    """
    conversation = session.get_one(m.Conversation, conversation_id)
    if conversation.kind == "private":
        session.execute(
            update(m.PlatformUser)
            .where(
                m.PlatformUser.account_id == conversation.account_id,
                m.PlatformUser.platform_user_id == conversation.chat_id,
            )
            .values(unreachable=True)
        )
    else:
        conversation.paused = True
    session.execute(
        update(m.OutboxItem)
        .where(m.OutboxItem.conversation_id == conversation_id, m.OutboxItem.status == S.PENDING)
        .values(status=S.FAILED, last_error="recipient unreachable (blocked or removed)")
    )


def draft_for_card(session: Session, conversation_id: int, platform_message_id: str) -> int | None:
    """The draft whose card (or edit prompt) is this platform message of the moderators' chat."""
    return session.scalars(
        select(m.OutboxItem.draft_id).where(
            m.OutboxItem.conversation_id == conversation_id,
            m.OutboxItem.platform_message_id == platform_message_id,
            m.OutboxItem.kind == m.OutboxKind.CARD,
            m.OutboxItem.draft_id.is_not(None),
        )
    ).first()


def report_in_doubt(session: Session, outbox_id: int, review_chats: dict[str, str]) -> int | None:
    """Tell the account's moderators' chat (`review_chats`: account name -> chat id), if it
    has one, about a reply in doubt.

    Returns the moderators' conversation id to wake its sender, or None when there is no such
    chat or the row is not a reply (a notice about a notice would never end).
    """
    row = session.get_one(m.OutboxItem, outbox_id)
    account = session.get_one(m.Account, row.account_id)
    chat_id = review_chats.get(account.name)
    if chat_id is None or row.kind is not m.OutboxKind.REPLY:
        return None
    target = session.get_one(m.Conversation, row.conversation_id)
    moderators = history.ensure_conversation_id(session, account.id, chat_id, ChatKind.GROUP, None)
    said = row.text[:3000] if row.text != ERASED_TEXT else "(erased at the user's request)"
    text = (
        f"Reply #{row.id} to chat {target.chat_id} may or may not have been delivered "
        "(the send was interrupted). It will not be resent automatically; please check the "
        f"chat. It said:\n\n{said}"
    )
    enqueue(
        session,
        account_id=account.id,
        conversation_id=moderators,
        text=text,
        draft_id=row.draft_id,
        reply_to_id=None,
        kind=m.OutboxKind.NOTICE,
    )
    return moderators
