"""erase-user while one of the user's replies is being sent, on both backends: the row in
flight keeps no text and no links, and the sender finishing afterwards (sent, retry, in doubt)
neither recreates the user's text nor fails."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot import privacy
from bot.domain import OutboxStatus
from bot.moderation import ModerationService
from bot.storage import models as m
from bot.storage import outbox_store
from bot.storage.db import Database
from tests.fakes import OPERATOR, AllowAll, queue_draft
from tests.storage.test_privacy import ALICE, _texts


def _claimed_reply(db: Database) -> outbox_store.OutboxJob:
    """Alice's approved reply, claimed by a sender: `sending`, the platform call under way."""
    _, draft_id = queue_draft(
        db, "ALICE-1 send it to 5 Elm St", "ALICE-R1 we ship to 5 Elm St today", user_id=ALICE
    )
    ModerationService(db, gate=AllowAll).approve(OPERATOR, draft_id)  # pending, nobody woken
    with db.session() as s:
        conversation_id = s.scalars(
            select(m.OutboxItem.conversation_id).where(m.OutboxItem.status == OutboxStatus.PENDING)
        ).one()
        job = outbox_store.claim_next(s, conversation_id)
    assert isinstance(job, outbox_store.OutboxJob) and job.text.startswith("ALICE-R1")
    return job


def _row(db: Database, outbox_id: int) -> tuple[object, ...]:
    with db.session() as s:
        row = s.get_one(m.OutboxItem, outbox_id)
        return (row.status, row.text, row.draft_id, row.reply_to_id, row.outbound_message_id)


def _messages(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(m.Message)) or 0)


def test_a_reply_sent_during_erasure_is_recorded_without_any_text(migrated_db: Database) -> None:
    job = _claimed_reply(migrated_db)

    [removed] = privacy.erase_user(migrated_db, OPERATOR, "console", ALICE)

    assert removed.counts["outbox_blanked"] == 1 and removed.counts["outbox"] == 0
    assert "ALICE" not in _texts(migrated_db)
    assert _row(migrated_db, job.id) == (OutboxStatus.SENDING, "", None, None, None)

    with migrated_db.session() as s:  # the platform call returns: delivered
        assert outbox_store.mark_sent(s, job, "tg-1") is None

    assert "ALICE" not in _texts(migrated_db)
    assert _messages(migrated_db) == 0  # no outbound message recreated from the reply
    assert _row(migrated_db, job.id) == (OutboxStatus.SENT, "", None, None, None)
    with migrated_db.session() as s:
        row = s.get_one(m.OutboxItem, job.id)
        assert row.platform_message_id == "tg-1" and row.last_error == outbox_store.ERASED_NOTE


def test_a_blanked_reply_is_never_sent_again(migrated_db: Database) -> None:
    """A retry after the erasure cancels the row; an interrupted send is reported in doubt
    without a text."""
    job = _claimed_reply(migrated_db)
    privacy.erase_user(migrated_db, OPERATOR, "console", ALICE)

    with migrated_db.session() as s:
        outbox_store.mark_retry(s, job.id, "timed out", timedelta(seconds=1))
        assert outbox_store.claim_next(s, job.conversation_id) is None
    assert _row(migrated_db, job.id)[:2] == (OutboxStatus.CANCELLED, "")

    second = _claimed_reply(migrated_db)  # she wrote again; erased again mid-send
    privacy.erase_user(migrated_db, OPERATOR, "console", ALICE)
    with migrated_db.session() as s:
        outbox_store.mark_failed(s, second, "read timeout", OutboxStatus.UNKNOWN)
        moderators = outbox_store.report_in_doubt(s, second.id, {"shop": "-100"})
    assert moderators is not None
    assert "ALICE" not in _texts(migrated_db)
    with migrated_db.session() as s:
        notice = s.scalars(
            select(m.OutboxItem.text).where(m.OutboxItem.kind == m.OutboxKind.NOTICE)
        ).one()
    assert notice.endswith("(erased at the user's request)")
