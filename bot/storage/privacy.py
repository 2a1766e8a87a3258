"""Removing personal data: one platform user's on request (`erase_user`, GDPR Art. 17), and
everything past the retention period (`prune`, GDPR Art. 5(1)(e)).

Children are deleted before their parents, each with its own statement, so the counts per table
are exact and nothing depends on the database's ON DELETE cascades. Audit rows are kept (who did
what, and when, stays provable) but lose the texts they quoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Delete, Select, Update, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from bot.domain import DraftStatus, OutboxStatus
from bot.storage import models as m
from bot.storage.outbox_store import ERASED_NOTE, ERASED_TEXT, user_tag

# Outbox rows that are not finished with: never pruned (an `unknown` one awaits a moderator).
LIVE_OUTBOX = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.UNKNOWN)
# The keys of `Removed.counts`, in the order they are reported.
COUNTED = (
    "messages",
    "analyses",
    "reply_drafts",
    "draft_candidates",
    "label_examples",
    "outbox",
    "outbox_cancelled",
    "outbox_blanked",
    "moderator_notices",
    "audit_texts_cleared",
)


# Counts of rows already counted under another key.
SUBTOTALS = ("outbox_cancelled", "moderator_notices")


@dataclass(frozen=True, slots=True)
class Removed:
    """What was removed from one account: rows per table (`COUNTED`).

    `outbox_cancelled` counts the outbox rows among `outbox` that had not been sent yet;
    `outbox_blanked` the rows kept without text because they were being sent (erasure);
    `moderator_notices` the moderators' notices quoting the user, removed or blanked (also
    counted in `outbox` / `outbox_blanked`); `audit_texts_cleared` the audit rows kept without
    their quoted texts.
    """

    account: str
    account_id: int
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(v for k, v in self.counts.items() if k not in SUBTOTALS)

    def summary(self) -> str:
        """`3 messages, 1 analyses, ...`, leaving out the tables with nothing removed."""
        parts = [f"{self.counts[k]} {k}" for k in COUNTED if self.counts.get(k)]
        return ", ".join(parts) or "nothing"


@dataclass(frozen=True, slots=True)
class UserRef:
    """A platform user as one account knows them."""

    account: str
    account_id: int
    user_row_id: int


def find_users(
    session: Session, platform: str, platform_user_id: str, account: str | None = None
) -> list[UserRef]:
    """The accounts (only `account`, when given) that know this platform user, by name."""
    stmt = (
        select(m.Account.name, m.Account.id, m.PlatformUser.id)
        .join(m.PlatformUser, m.PlatformUser.account_id == m.Account.id)
        .where(m.Account.platform == platform, m.PlatformUser.platform_user_id == platform_user_id)
        .order_by(m.Account.name)
    )
    if account is not None:
        stmt = stmt.where(m.Account.name == account)
    return [UserRef(name, account_id, row_id) for name, account_id, row_id in session.execute(stmt)]


def erase_user(session: Session, user: UserRef) -> Removed:
    """Remove everything of one platform user in one account and mark them erased.

    Gone: their messages with analyses, drafts, candidates and label corrections; the bot's
    replies to them (which may repeat what they wrote); outbox rows of those drafts, including
    moderators' cards (rows still pending are cancelled); the moderators' notices that quote
    them (found by `user_tag`) with their copies in the moderators' chat history. A row being
    sent at this moment cannot be recalled: it stays, `sending`, without its text or links, and
    the sender records its outcome without recreating any text (bot/storage/outbox_store.py).
    Kept: the `platform_users` row, flagged `erased` and without a display name, so their later
    messages stay out of training exports and prompts' history.
    """
    platform_user_id = session.scalar(
        select(m.PlatformUser.platform_user_id).where(m.PlatformUser.id == user.user_row_id)
    )
    inbound = select(m.Message.id).where(m.Message.user_id == user.user_row_id)
    replies = select(m.Message.id).where(
        m.Message.direction == m.Direction.OUTBOUND, m.Message.reply_to_id.in_(inbound)
    )
    drafts = select(m.ReplyDraft.id).where(m.ReplyDraft.message_id.in_(inbound))
    notices = and_(
        m.OutboxItem.account_id == user.account_id,
        m.OutboxItem.kind == m.OutboxKind.NOTICE,
        m.OutboxItem.text.contains(user_tag(platform_user_id or ""), autoescape=True),
    )
    outbox = or_(m.OutboxItem.draft_id.in_(drafts), m.OutboxItem.reply_to_id.in_(inbound), notices)
    sending = m.OutboxItem.status == OutboxStatus.SENDING
    # A sent notice's copy in the moderators' chat history quotes the user as well.
    notice_copies = select(m.OutboxItem.outbound_message_id).where(
        notices, m.OutboxItem.outbound_message_id.is_not(None)
    )
    counts = {
        "outbox_cancelled": _count(
            session,
            select(func.count())
            .select_from(m.OutboxItem)
            .where(outbox, m.OutboxItem.status == OutboxStatus.PENDING),
        ),
        "moderator_notices": _count(
            session, select(func.count()).select_from(m.OutboxItem).where(notices)
        ),
        # First, while the links still find them.
        "outbox_blanked": _run(
            session,
            update(m.OutboxItem)
            .where(outbox, sending)
            .values(text=ERASED_TEXT, draft_id=None, reply_to_id=None, last_error=ERASED_NOTE),
        ),
        "messages": _run(session, delete(m.Message).where(m.Message.id.in_(notice_copies))),
        "outbox": _run(session, delete(m.OutboxItem).where(outbox, ~sending)),
        "audit_texts_cleared": _run(session, _clear_audit(m.ModerationAction.draft_id.in_(drafts))),
        "draft_candidates": _run(
            session, delete(m.DraftCandidate).where(m.DraftCandidate.draft_id.in_(drafts))
        ),
        "reply_drafts": _run(session, delete(m.ReplyDraft).where(m.ReplyDraft.id.in_(drafts))),
        "analyses": _run(session, delete(m.Analysis).where(m.Analysis.message_id.in_(inbound))),
        "label_examples": _run(
            session, delete(m.LabelExample).where(m.LabelExample.message_id.in_(inbound))
        ),
    }
    # The bot's replies first: they are found through the user's messages.
    counts["messages"] += _run(session, delete(m.Message).where(m.Message.id.in_(replies)))
    counts["messages"] += _run(
        session, delete(m.Message).where(m.Message.user_id == user.user_row_id)
    )
    session.execute(
        update(m.PlatformUser)
        .where(m.PlatformUser.id == user.user_row_id)
        .values(erased=True, display_name=None)
    )
    return Removed(user.account, user.account_id, counts)


def prune(session: Session, account_id: int, account: str, before: datetime) -> Removed:
    """Remove one account's data created before `before`.

    Gone: messages (both directions) with their analyses, drafts, candidates and label
    corrections, and outbox rows finished with (sent, failed, cancelled). Kept, however old:
    drafts still queued for a moderator with their messages and cards; outbox rows not
    finished with (pending, sending, unknown) and the messages they answer; users, chats and
    the audit rows themselves, whose quoted texts are cleared.
    """
    live = m.OutboxItem.status.in_(LIVE_OUTBOX)
    queued = select(m.ReplyDraft.id).where(m.ReplyDraft.status == DraftStatus.QUEUED)
    kept = (
        select(m.ReplyDraft.message_id)
        .where(m.ReplyDraft.status == DraftStatus.QUEUED)
        .union(
            select(m.ReplyDraft.message_id)
            .join(m.OutboxItem, m.OutboxItem.draft_id == m.ReplyDraft.id)
            .where(live),
            # NOT IN meets no NULL: a NULL in the list would make it keep everything.
            select(m.OutboxItem.reply_to_id).where(live, m.OutboxItem.reply_to_id.is_not(None)),
        )
    )
    old = select(m.Message.id).where(
        m.Message.account_id == account_id,
        m.Message.created_at < before,
        m.Message.id.not_in(kept),
    )
    drafts = select(m.ReplyDraft.id).where(m.ReplyDraft.message_id.in_(old))
    counts = {
        "outbox": _run(
            session,
            delete(m.OutboxItem).where(
                m.OutboxItem.account_id == account_id,
                m.OutboxItem.created_at < before,
                m.OutboxItem.status.not_in(LIVE_OUTBOX),  # sent, failed, cancelled
                # A queued draft's card: a moderator's reply to it still finds the draft.
                or_(m.OutboxItem.draft_id.is_(None), m.OutboxItem.draft_id.not_in(queued)),
            ),
        ),
        "outbox_cancelled": 0,
        "audit_texts_cleared": _run(
            session,
            _clear_audit(
                m.ModerationAction.account_id == account_id,
                or_(
                    m.ModerationAction.created_at < before,
                    m.ModerationAction.draft_id.in_(drafts),
                ),
            ),
        ),
        "draft_candidates": _run(
            session, delete(m.DraftCandidate).where(m.DraftCandidate.draft_id.in_(drafts))
        ),
        "reply_drafts": _run(session, delete(m.ReplyDraft).where(m.ReplyDraft.id.in_(drafts))),
        "analyses": _run(session, delete(m.Analysis).where(m.Analysis.message_id.in_(old))),
        "label_examples": _run(
            session, delete(m.LabelExample).where(m.LabelExample.message_id.in_(old))
        ),
    }
    counts["messages"] = _run(session, delete(m.Message).where(m.Message.id.in_(old)))
    return Removed(account, account_id, counts)


def accounts(session: Session) -> list[tuple[int, str]]:
    """Every account's id and name, by name."""
    rows = session.execute(select(m.Account.id, m.Account.name).order_by(m.Account.name))
    return [(account_id, name) for account_id, name in rows]


def _clear_audit(*where: Any) -> Update:
    """Drop the texts quoted by audit rows; the rows (who, what, when, why) stay."""
    return (
        update(m.ModerationAction)
        .where(
            *where,
            or_(
                m.ModerationAction.before_text.is_not(None),
                m.ModerationAction.after_text.is_not(None),
            ),
        )
        .values(before_text=None, after_text=None)
    )


def _run(session: Session, statement: Delete | Update) -> int:
    # The session's objects are not synchronised: callers work through these functions only.
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return int(getattr(result, "rowcount", 0) or 0)


def _count(session: Session, statement: Select[int]) -> int:
    return int(session.scalar(statement) or 0)
