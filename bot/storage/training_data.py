"""Moderated history read back as training material: replies with their fate, and labelled
examples. Plain dataclasses out, in id order; what to leave out is decided by the exporter
(training/export.py), which also takes conversation context from `history.recent_turns`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, aliased

from bot.domain import DraftStatus, ModerationKind, VerdictAction
from bot.storage import models as m

# The audit actions that decided a draft's fate, and how an export names them.
_REVIEWS = {
    ModerationKind.AUTO_SEND: "auto",
    ModerationKind.APPROVE: "approved",
    ModerationKind.OVERRIDE: "override",
    ModerationKind.EDIT: "edited",
}


@dataclass(frozen=True, slots=True)
class ReplyRecord:
    """A draft with the message it answers and what became of it.

    `text` is the reply as sent (a moderator's edit replaces the model's text); `model_text` is
    the model's own draft that an edit replaced (None unless edited). `review` is how the draft
    was let through: "auto", "approved", "override", "edited", or "" when nobody let it through
    (queued or rejected). `user_id` is the sender's platform_users row.
    """

    draft_id: int
    message_id: int
    conversation_id: int
    user_id: int | None
    user_erased: bool
    inbound: str
    text: str
    model_text: str | None
    status: DraftStatus
    verdict: VerdictAction
    fallback_used: bool
    review: str
    created_at: datetime
    user_banned: bool = False  # moderators banned the sender: never trained on


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """A labelled text; `user_id` / `user_erased` are the message's sender, for corrections."""

    id: int
    task: str
    text: str
    label: str
    source: str
    user_id: int | None
    user_erased: bool
    user_banned: bool = False


def account_names(session: Session) -> list[str]:
    """Every account in the database, by name."""
    return list(session.scalars(select(m.Account.name).order_by(m.Account.name)))


def _drafts_of(account_id: int, since: datetime | None) -> Select[int]:
    """Ids of the account's drafts (made since `since`), as a subquery filter."""
    inbound = aliased(m.Message)
    stmt = (
        select(m.ReplyDraft.id)
        .join(inbound, m.ReplyDraft.message_id == inbound.id)
        .where(inbound.account_id == account_id)
    )
    if since is not None:
        stmt = stmt.where(m.ReplyDraft.created_at >= since)
    return stmt


def replies(session: Session, account_id: int, since: datetime | None = None) -> list[ReplyRecord]:
    """Every draft of the account (made since `since`), whatever its state, oldest first."""
    reviews = _reviews(session, account_id, since)
    inbound = aliased(m.Message)
    rows = session.execute(
        select(m.ReplyDraft, inbound, m.PlatformUser.erased, m.PlatformUser.banned_at)
        .join(inbound, m.ReplyDraft.message_id == inbound.id)
        .outerjoin(m.PlatformUser, inbound.user_id == m.PlatformUser.id)
        .where(m.ReplyDraft.id.in_(_drafts_of(account_id, since)))
        .order_by(m.ReplyDraft.id)
    ).all()
    records = []
    for draft, message, erased, banned_at in rows:
        review, model_text = reviews.get(draft.id, ("", None))
        records.append(
            ReplyRecord(
                draft_id=draft.id,
                message_id=message.id,
                conversation_id=message.conversation_id,
                user_id=message.user_id,
                user_erased=bool(erased),
                inbound=message.text,
                text=draft.text,
                model_text=model_text,
                status=draft.status,
                verdict=draft.verdict,
                fallback_used=draft.fallback_used,
                review=review,
                created_at=draft.created_at,
                user_banned=banned_at is not None,
            )
        )
    return records


def _reviews(
    session: Session, account_id: int, since: datetime | None
) -> dict[int, tuple[str, str | None]]:
    """Draft id -> (how it was let through, the model's text an edit replaced)."""
    rows = session.execute(
        select(
            m.ModerationAction.draft_id, m.ModerationAction.action, m.ModerationAction.before_text
        )
        .where(
            m.ModerationAction.draft_id.in_(_drafts_of(account_id, since)),
            m.ModerationAction.action.in_(list(_REVIEWS)),
        )
        .order_by(m.ModerationAction.id)
    ).all()
    found: dict[int, tuple[str, str | None]] = {}
    for draft_id, action, before in rows:
        assert draft_id is not None  # the filter above
        # A draft leaves the queue once, so there is one such row; the first one counts.
        found.setdefault(
            draft_id, (_REVIEWS[action], before if action is m.ModerationKind.EDIT else None)
        )
    return found


def labels(session: Session, account_id: int, since: datetime | None = None) -> list[LabelRecord]:
    """The account's labelled examples and the shared ones (no account), oldest first."""
    stmt = (
        select(
            m.LabelExample.id,
            m.LabelExample.task,
            m.LabelExample.text,
            m.LabelExample.label,
            m.LabelExample.source,
            m.Message.user_id,
            m.PlatformUser.erased,
            m.PlatformUser.banned_at,
        )
        .outerjoin(m.Message, m.LabelExample.message_id == m.Message.id)
        .outerjoin(m.PlatformUser, m.Message.user_id == m.PlatformUser.id)
        .where(or_(m.LabelExample.account_id == account_id, m.LabelExample.account_id.is_(None)))
        .order_by(m.LabelExample.id)
    )
    if since is not None:
        stmt = stmt.where(m.LabelExample.created_at >= since)
    return [
        LabelRecord(id_, task, text, label, source, user_id, bool(erased), banned is not None)
        for id_, task, text, label, source, user_id, erased, banned in session.execute(stmt).all()
    ]
