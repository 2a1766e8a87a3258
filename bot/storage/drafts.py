"""Reply drafts, their candidates, their moderation audit trail, and the queries behind the
review queue."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, aliased

from bot.domain import Actor, AuditEntry, Candidate, Draft, DropReason, QueueItem, Verdict
from bot.errors import StorageError
from bot.storage import models as m
from bot.storage import outbox_store

# Reasons that make a candidate a bad reply. OUTRANKED ones were fine, only scored lower.
NEGATIVE_REASONS = frozenset(DropReason) - {DropReason.OUTRANKED}


@dataclass(frozen=True, slots=True)
class DroppedCandidate:
    """A candidate reply that was dropped, with the inbound message it answered."""

    message_id: int
    message_text: str
    draft_id: int
    candidate: Candidate


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
    session.add_all(
        m.DraftCandidate(
            draft_id=row.id,
            rank=rank,
            text=candidate.text,
            raw_text=candidate.raw,
            # NaN cannot be ranked and SQLite would store it as NULL: keep it as the worst.
            score=-math.inf if math.isnan(candidate.score) else candidate.score,
            new_tokens=candidate.new_tokens,
            dropped=candidate.dropped.value if candidate.dropped is not None else None,
        )
        for rank, candidate in enumerate(draft.candidates)
    )
    session.flush()  # the moderators' card is built from get_item in this same transaction
    return row.id


def candidates(session: Session, draft_id: int) -> tuple[Candidate, ...]:
    """A draft's sampled candidates, best (rank 0) first; empty for a single-sample draft."""
    rows = session.scalars(
        select(m.DraftCandidate)
        .where(m.DraftCandidate.draft_id == draft_id)
        .order_by(m.DraftCandidate.rank)
    )
    return tuple(_candidate(row) for row in rows)


def dropped_candidates(
    session: Session,
    *,
    account_id: int | None = None,
    limit: int | None = None,
    reasons: Iterable[DropReason] = NEGATIVE_REASONS,
) -> list[DroppedCandidate]:
    """Candidates dropped for one of `reasons` (by default every reason but OUTRANKED), with
    the message they answered: negatives for the learning loop. Newest first; only this
    account's when `account_id` is given."""
    inbound = aliased(m.Message)
    stmt = (
        select(m.DraftCandidate, m.ReplyDraft.message_id, inbound.text)
        .join(m.ReplyDraft, m.DraftCandidate.draft_id == m.ReplyDraft.id)
        .join(inbound, m.ReplyDraft.message_id == inbound.id)
        .where(m.DraftCandidate.dropped.in_([reason.value for reason in reasons]))
        .order_by(m.DraftCandidate.id.desc())
        .limit(limit)
    )
    if account_id is not None:
        stmt = stmt.where(inbound.account_id == account_id)
    return [
        DroppedCandidate(message_id, message_text, row.draft_id, _candidate(row))
        for row, message_id, message_text in session.execute(stmt).all()
    ]


def _candidate(row: m.DraftCandidate) -> Candidate:
    try:
        dropped = DropReason(row.dropped) if row.dropped is not None else None
    except ValueError:
        raise StorageError(
            f"draft candidate {row.id} has an unknown drop reason {row.dropped!r}: it was "
            "written by a newer autoreply; upgrade this one"
        ) from None
    return Candidate(
        text=row.text,
        raw=row.raw_text,
        score=row.score,
        new_tokens=row.new_tokens,
        dropped=dropped,
    )


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
    *,
    account_id: int,
    actor: Actor,
    action: m.ModerationKind,
    draft_id: int | None = None,
    target_kind: str = "draft",
    target: str | None = None,
    before_text: str | None = None,
    after_text: str | None = None,
    note: str | None = None,
) -> None:
    """One audit row: every action and every refusal, with or without a draft."""
    session.add(
        m.ModerationAction(
            account_id=account_id,
            draft_id=draft_id,
            target_kind=target_kind,
            target=target if target is not None else (str(draft_id) if draft_id else None),
            actor_kind=actor.kind.value,
            actor_id=actor.id[:128],
            moderator=actor.display[:128],
            action=action,
            before_text=before_text,
            after_text=after_text,
            note=note,
        )
    )


def enqueue_reply(session: Session, item: QueueItem, text: str) -> int:
    """Queue the reply to a draft's message for sending; returns the outbox id."""
    return outbox_store.enqueue(
        session,
        account_id=item.account_id,
        conversation_id=item.conversation_id,
        text=text,
        draft_id=item.draft_id,
        reply_to_id=item.message_id,
    )


def set_verdict(session: Session, draft_id: int, verdict: Verdict) -> None:
    """Record the gate's verdict on a moderator's edited text."""
    session.execute(
        update(m.ReplyDraft)
        .where(m.ReplyDraft.id == draft_id)
        .values(verdict=verdict.action, toxicity=verdict.toxicity, flags=list(verdict.flags))
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
        account=account.name,
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
        account_id=account.id,
        conversation_id=conversation.id,
    )


def list_drafts(
    session: Session,
    statuses: tuple[m.DraftStatus, ...],
    limit: int = 50,
    accounts: tuple[str, ...] | None = None,
) -> list[QueueItem]:
    """Drafts in these states, oldest first; only these accounts' when `accounts` is given."""
    stmt = (
        _queue_select()
        .where(m.ReplyDraft.status.in_(statuses))
        .order_by(m.ReplyDraft.id)
        .limit(limit)
    )
    if accounts is not None:
        stmt = stmt.where(m.Account.name.in_(accounts))
    return [_item(tuple(row)) for row in session.execute(stmt).all()]


def get_item(session: Session, draft_id: int) -> QueueItem | None:
    """One draft as moderators see it, with its candidates (which `list_drafts` leaves out)."""
    row = session.execute(_queue_select().where(m.ReplyDraft.id == draft_id)).first()
    if row is None:
        return None
    return replace(_item(tuple(row)), candidates=candidates(session, draft_id))


def audit_trail(
    session: Session,
    *,
    draft_id: int | None = None,
    accounts: tuple[str, ...] | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    """Audit rows of one draft, or the latest of some accounts (oldest first)."""
    stmt = select(m.ModerationAction, m.Account.name).join(
        m.Account, m.ModerationAction.account_id == m.Account.id
    )
    if draft_id is not None:
        stmt = stmt.where(m.ModerationAction.draft_id == draft_id)
    if accounts is not None:
        stmt = stmt.where(m.Account.name.in_(accounts))
    rows = session.execute(stmt.order_by(m.ModerationAction.id.desc()).limit(limit)).all()
    return [
        AuditEntry(
            r.moderator,
            r.action.value,
            r.before_text,
            r.after_text,
            r.note,
            r.created_at,
            account=name,
            target=f"{r.target_kind} {r.target}" if r.target else r.target_kind,
        )
        for r, name in reversed(rows)
    ]
