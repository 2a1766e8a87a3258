"""Review-queue operations with an audit trail.

The CLI (`autoreply queue ...`) and the Telegram moderators' chat call these same functions.
Each one is a single unit of work; the state change is a conditional UPDATE, so a second press
or a second moderator changes nothing and gets an InvalidStateError that says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot.errors import InputError, InvalidStateError, NotFoundError
from bot.storage import drafts as draft_store
from bot.storage import models as m
from bot.storage import outbox_store
from bot.storage.db import Database

MAX_REPLY_CHARS = 4096 * 4  # channels split long replies; beyond this an edit is surely a mistake

QueueItem = draft_store.QueueItem
AuditEntry = draft_store.AuditEntry


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a moderation action did. `outbox_id` is set when a reply was queued for sending."""

    draft_id: int
    status: m.DraftStatus
    conversation_id: int
    outbox_id: int | None = None


def list_queue(db: Database, *, include_all: bool = False, limit: int = 50) -> list[QueueItem]:
    statuses = tuple(m.DraftStatus) if include_all else (m.DraftStatus.QUEUED,)
    with db.session() as s:
        return draft_store.list_drafts(s, statuses, limit)


def show(db: Database, draft_id: int) -> tuple[QueueItem, list[AuditEntry]]:
    with db.session() as s:
        item = draft_store.get_item(s, draft_id)
        if item is None:
            raise NotFoundError(f"there is no draft #{draft_id}; see `autoreply queue list`")
        return item, draft_store.audit_trail(s, draft_id)


def approve(db: Database, draft_id: int, *, moderator: str) -> Outcome:
    """Send the draft as it stands."""
    with db.session() as s:
        draft = _queued(s, draft_id)
        _move(s, draft, m.DraftStatus.APPROVED)
        draft_store.audit(
            s,
            draft_id,
            moderator=moderator,
            action=m.ModerationKind.APPROVE,
            before_text=draft.text,
            after_text=draft.text,
        )
        outbox_id = _enqueue(s, draft, draft.text)
        return Outcome(draft_id, m.DraftStatus.APPROVED, _conversation_id(s, draft), outbox_id)


def edit(db: Database, draft_id: int, new_text: str, *, moderator: str) -> Outcome:
    """Replace the draft's text and send the new text."""
    text = new_text.strip()
    if not text:
        raise InputError("the edited reply is empty; give the text to send, or reject the draft")
    if len(text) > MAX_REPLY_CHARS:
        raise InputError(
            f"the edited reply has {len(text)} characters; keep it under {MAX_REPLY_CHARS}"
        )
    with db.session() as s:
        draft = _queued(s, draft_id)
        before = draft.text
        _move(s, draft, m.DraftStatus.EDITED, text=text)
        draft_store.audit(
            s,
            draft_id,
            moderator=moderator,
            action=m.ModerationKind.EDIT,
            before_text=before,
            after_text=text,
        )
        outbox_id = _enqueue(s, draft, text)
        return Outcome(draft_id, m.DraftStatus.EDITED, _conversation_id(s, draft), outbox_id)


def reject(db: Database, draft_id: int, *, moderator: str, reason: str | None = None) -> Outcome:
    """Drop the draft; nothing is sent."""
    with db.session() as s:
        draft = _queued(s, draft_id)
        _move(s, draft, m.DraftStatus.REJECTED)
        draft_store.audit(
            s,
            draft_id,
            moderator=moderator,
            action=m.ModerationKind.REJECT,
            before_text=draft.text,
            note=reason,
        )
        return Outcome(draft_id, m.DraftStatus.REJECTED, _conversation_id(s, draft))


def in_doubt(db: Database, limit: int = 50) -> list[outbox_store.OutboxRow]:
    """Replies whose delivery is unknown (the process died mid-send): a person must check."""
    with db.session() as s:
        return outbox_store.list_rows(s, (m.OutboxStatus.UNKNOWN,), limit)


def _queued(session: Session, draft_id: int) -> m.ReplyDraft:
    draft = session.get(m.ReplyDraft, draft_id)
    if draft is None:
        raise NotFoundError(f"there is no draft #{draft_id}; see `autoreply queue list`")
    if draft.status is not m.DraftStatus.QUEUED:
        raise InvalidStateError(
            f"draft #{draft_id} is already {draft.status.value}; only queued drafts can be "
            "approved, edited or rejected"
        )
    return draft


def _move(
    session: Session, draft: m.ReplyDraft, to: m.DraftStatus, text: str | None = None
) -> None:
    if not draft_store.transition(
        session, draft.id, expected=(m.DraftStatus.QUEUED,), to=to, text=text
    ):
        raise InvalidStateError(
            f"draft #{draft.id} was just handled by someone else; see `autoreply queue show "
            f"{draft.id}`"
        )
    session.refresh(draft)


def _conversation_id(session: Session, draft: m.ReplyDraft) -> int:
    return session.get_one(m.Message, draft.message_id).conversation_id


def _enqueue(session: Session, draft: m.ReplyDraft, text: str) -> int:
    message = session.get_one(m.Message, draft.message_id)
    return outbox_store.enqueue(
        session,
        account_id=message.account_id,
        conversation_id=message.conversation_id,
        text=text,
        draft_id=draft.id,
        reply_to_id=message.id,
    )
