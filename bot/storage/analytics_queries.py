"""The analytics page's reads: one account's facts over a time range, as plain rows.

Each query fetches only the columns a series needs (a timestamp and a label or a duration);
bucketing by day happens in `bot/analytics/series.py`, in the account's time zone, which is the
same on SQLite and PostgreSQL and costs a few milliseconds for thousands of rows. Only the first
version of an edited message counts, so an edit does not count a message twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.orm import Session, aliased

from bot.domain import ActorKind, ModerationKind, as_utc
from bot.storage import models as m

# A moderator's decision on a queued draft: what ends its wait in the queue.
QUEUE_DECISIONS = (
    ModerationKind.APPROVE,
    ModerationKind.EDIT,
    ModerationKind.REJECT,
    ModerationKind.OVERRIDE,
)
# What counts as a moderator's work: acting on drafts, chats and users. Refusals, the policy's
# own actions and operators' adapter or privacy chores are not queue work.
WORKLOAD_ACTIONS = (
    *QUEUE_DECISIONS,
    ModerationKind.REPLY,
    ModerationKind.RELABEL,
    ModerationKind.CANCEL,
    ModerationKind.BAN,
    ModerationKind.UNBAN,
    ModerationKind.HANDOFF,
    ModerationKind.HANDBACK,
    ModerationKind.PAUSE,
    ModerationKind.RESUME,
)


@dataclass(frozen=True, slots=True)
class InboundFact:
    """One inbound message: when it was sent, what the pipeline decided, how it was read.
    `decision` is None while unhandled; `intent` and `sentiment` are None without an analysis
    (a banned user's message is stored as metadata only)."""

    at: datetime
    decision: str | None
    intent: str | None
    sentiment: str | None


@dataclass(frozen=True, slots=True)
class Delay:
    """A duration that ended at `at` (a reply sent, a draft moderated)."""

    at: datetime
    seconds: float


@dataclass(frozen=True, slots=True)
class ActionFact:
    at: datetime
    moderator: str


def inbound_facts(
    session: Session, account_id: int, start: datetime, end: datetime
) -> list[InboundFact]:
    """Inbound messages sent in [start, end), with their decision and analysis."""
    at = func.coalesce(m.Message.sent_at, m.Message.created_at)
    # The enum columns read as their stored strings: converting thousands of rows to enums
    # and back costs as much as the query itself.
    decision = type_coerce(m.Message.decision, String)
    sentiment = type_coerce(m.Analysis.sentiment, String)
    rows = session.execute(
        select(at, decision, m.Analysis.intent, sentiment)
        .outerjoin(m.Analysis, m.Analysis.message_id == m.Message.id)
        .where(
            m.Message.account_id == account_id,
            m.Message.direction == m.Direction.INBOUND,
            m.Message.edit_version == 0,
            at >= start,
            at < end,
        )
    ).all()
    return [InboundFact(as_utc(when), *labels) for when, *labels in rows]


def reply_delays(session: Session, account_id: int, start: datetime, end: datetime) -> list[Delay]:
    """For each inbound message whose first reply was sent in [start, end): the time from the
    message to that reply. Replies are outbound messages quoting it (drafts sent automatically
    or after review, moderators' own replies, the policy's answers)."""
    inbound = aliased(m.Message)
    first_reply = func.min(m.Message.sent_at)
    rows = session.execute(
        select(func.coalesce(inbound.sent_at, inbound.created_at), first_reply)
        .join(inbound, m.Message.reply_to_id == inbound.id)
        .where(
            m.Message.account_id == account_id,
            m.Message.direction == m.Direction.OUTBOUND,
            m.Message.sent_at.is_not(None),
            inbound.direction == m.Direction.INBOUND,
        )
        .group_by(inbound.id, inbound.sent_at, inbound.created_at)
        .having(first_reply >= start, first_reply < end)
    ).all()
    return [_delay(asked, answered) for asked, answered in rows if answered is not None]


def queue_waits(session: Session, account_id: int, start: datetime, end: datetime) -> list[Delay]:
    """For each draft first decided by a moderator in [start, end): the time it waited, from
    the draft's creation to that decision (approve, edit, reject or override)."""
    decided = func.min(m.ModerationAction.created_at)
    rows = session.execute(
        select(m.ReplyDraft.created_at, decided)
        .join(m.ReplyDraft, m.ModerationAction.draft_id == m.ReplyDraft.id)
        .where(
            m.ModerationAction.account_id == account_id,
            m.ModerationAction.action.in_(QUEUE_DECISIONS),
        )
        .group_by(m.ReplyDraft.id, m.ReplyDraft.created_at)
        .having(decided >= start, decided < end)
    ).all()
    return [_delay(created, moderated) for created, moderated in rows]


def moderator_actions(
    session: Session, account_id: int, start: datetime, end: datetime
) -> list[ActionFact]:
    """People's moderation actions in [start, end), by moderator name (the policy's own
    actions, refusals and operators' chores left out)."""
    rows = session.execute(
        select(m.ModerationAction.created_at, m.ModerationAction.moderator).where(
            m.ModerationAction.account_id == account_id,
            m.ModerationAction.actor_kind != ActorKind.POLICY.value,
            m.ModerationAction.action.in_(WORKLOAD_ACTIONS),
            m.ModerationAction.created_at >= start,
            m.ModerationAction.created_at < end,
        )
    ).all()
    return [ActionFact(as_utc(at), moderator) for at, moderator in rows]


def _delay(began: datetime, ended: datetime) -> Delay:
    ended = as_utc(ended)
    # Clock skew between the platform's time and ours must not show as a negative wait.
    return Delay(ended, max(0.0, (ended - as_utc(began)).total_seconds()))
