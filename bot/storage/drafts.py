"""Reply drafts, their moderation audit trail, and the queries behind the review queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, aliased

from bot.domain import Draft, Verdict
from bot.storage import models as m


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A draft as moderators see it: the message it answers, its analysis and its verdict."""

    draft_id: int
    status: m.DraftStatus
    created_at: datetime
    platform: str
    account: str
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


@dataclass(frozen=True, slots=True)
class AuditEntry:
    moderator: str
    action: str
    before_text: str | None
    after_text: str | None
    note: str | None
    created_at: datetime


def create_draft(
    session: Session,
    *,
    message_id: int,
    draft: Draft,
    verdict: Verdict,
    status: m.DraftStatus,
) -> int:
    row = m.ReplyDraft(
        message_id=message_id,
        text=draft.text,
        raw_text=draft.raw,
        fallback_used=draft.fallback_used,
        status=status,
        verdict=verdict.action,
        toxicity=verdict.toxicity,
        flags=list(verdict.flags),
        model_version=draft.model,
        adapter=draft.adapter,
    )
    session.add(row)
    session.flush()
    return row.id


def transition(
    session: Session,
    draft_id: int,
    *,
    expected: tuple[m.DraftStatus, ...],
    to: m.DraftStatus,
    text: str | None = None,
) -> bool:
    """Move a draft to `to` only if it is still in one of `expected`.

    One conditional UPDATE, so two moderators pressing at once cannot both win.
    """
    values: dict[str, object] = {"status": to}
    if text is not None:
        values["text"] = text
    result = session.execute(
        update(m.ReplyDraft)
        .where(m.ReplyDraft.id == draft_id, m.ReplyDraft.status.in_(expected))
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


def audit(
    session: Session,
    draft_id: int,
    *,
    moderator: str,
    action: m.ModerationKind,
    before_text: str | None = None,
    after_text: str | None = None,
    note: str | None = None,
) -> None:
    session.add(
        m.ModerationAction(
            draft_id=draft_id,
            moderator=moderator,
            action=action,
            before_text=before_text,
            after_text=after_text,
            note=note,
        )
    )


def _queue_select() -> Select[
    m.ReplyDraft, m.Message, m.Conversation, m.Account, str | None, m.Analysis
]:
    inbound = aliased(m.Message)
    return (
        select(
            m.ReplyDraft,
            inbound,
            m.Conversation,
            m.Account,
            m.PlatformUser.display_name,
            m.Analysis,
        )
        .join(inbound, m.ReplyDraft.message_id == inbound.id)
        .join(m.Conversation, inbound.conversation_id == m.Conversation.id)
        .join(m.Account, inbound.account_id == m.Account.id)
        .outerjoin(m.PlatformUser, inbound.user_id == m.PlatformUser.id)
        .outerjoin(m.Analysis, m.Analysis.message_id == inbound.id)
    )


def _item(row: tuple[object, ...]) -> QueueItem:
    draft, message, conversation, account, user_name, analysis = row
    assert isinstance(draft, m.ReplyDraft) and isinstance(message, m.Message)
    assert isinstance(conversation, m.Conversation) and isinstance(account, m.Account)
    assert analysis is None or isinstance(analysis, m.Analysis)
    return QueueItem(
        draft_id=draft.id,
        status=draft.status,
        created_at=draft.created_at,
        platform=account.platform,
        account=account.handle,
        chat_id=conversation.chat_id,
        user_name=user_name if isinstance(user_name, str) else None,
        message_id=message.id,
        message_text=message.text,
        draft_text=draft.text,
        raw_text=draft.raw_text,
        fallback_used=draft.fallback_used,
        intent=analysis.intent if analysis else None,
        intent_score=analysis.intent_score if analysis else None,
        sentiment=analysis.sentiment.value if analysis else None,
        sentiment_score=analysis.sentiment_score if analysis else None,
        verdict=draft.verdict.value,
        toxicity=draft.toxicity,
        flags=tuple(draft.flags or ()),
        input_flags=tuple(analysis.input_flags or ()) if analysis else (),
        model_version=draft.model_version,
    )


def list_drafts(
    session: Session, statuses: tuple[m.DraftStatus, ...], limit: int = 50
) -> list[QueueItem]:
    stmt = (
        _queue_select()
        .where(m.ReplyDraft.status.in_(statuses))
        .order_by(m.ReplyDraft.id)
        .limit(limit)
    )
    return [_item(tuple(row)) for row in session.execute(stmt).all()]


def get_item(session: Session, draft_id: int) -> QueueItem | None:
    row = session.execute(_queue_select().where(m.ReplyDraft.id == draft_id)).first()
    return _item(tuple(row)) if row else None


def audit_trail(session: Session, draft_id: int) -> list[AuditEntry]:
    rows = session.scalars(
        select(m.ModerationAction)
        .where(m.ModerationAction.draft_id == draft_id)
        .order_by(m.ModerationAction.id)
    )
    return [
        AuditEntry(r.moderator, r.action.value, r.before_text, r.after_text, r.note, r.created_at)
        for r in rows
    ]
