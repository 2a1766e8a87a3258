"""Erasing a user and pruning old data, on both backends: what goes, what stays, the audit
trail, and that a later training export holds nothing of an erased user."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, or_, select, update

from bot import privacy
from bot.config import Settings
from bot.domain import (
    Actor,
    ActorKind,
    Analysis,
    Candidate,
    DropReason,
    ModerationKind,
    Sentiment,
    Verdict,
    VerdictAction,
    utcnow,
)
from bot.errors import InputError, NotFoundError, PermissionDeniedError
from bot.jobs import add_retention, prune_old_data
from bot.local_delivery import console_wake
from bot.moderation import ModerationService
from bot.safety.context import CheckContext
from bot.storage import history
from bot.storage import labels as label_store
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import OPERATOR, AllowAll, queue_draft
from training.export import export_account

ALICE, BOB = "21", "22"
GROUP = "-7"
CANDIDATES = (
    Candidate("ALICE-C1 fine", "ALICE-C1 fine", -0.5),
    Candidate("ALICE-C2 no no no no", "ALICE-C2 no no no no", -1.0, dropped=DropReason.REPETITIVE),
)


class PassingGate:
    """The export's safety gate, allowing everything: these tests are about who is left out."""

    def check_inputs(self, texts: Sequence[str], context: CheckContext) -> list[Verdict]:
        return [Verdict(VerdictAction.ALLOW, 0.0) for _ in texts]

    def check_drafts(self, texts: Sequence[str], context: CheckContext) -> list[Verdict]:
        return self.check_inputs(texts, context)


def _services(db: Database) -> tuple[ModerationService, ModerationService]:
    """Moderation that delivers console replies at once, and one that leaves them pending."""
    sends = ModerationService(db, gate=AllowAll, wake=console_wake(db))
    holds = ModerationService(db, gate=AllowAll)
    return sends, holds


def _count(db: Database, model: type[m.Base], *where: object) -> int:
    with db.session() as s:
        stmt = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
        return int(s.scalar(stmt) or 0)


def _texts(db: Database) -> str:
    """Every text the database holds anywhere, joined."""
    with db.session() as s:
        parts = [
            *s.scalars(select(m.Message.text)),
            *s.scalars(select(m.ReplyDraft.text)),
            *s.scalars(select(m.ReplyDraft.raw_text)),
            *s.scalars(select(m.DraftCandidate.raw_text)),
            *s.scalars(select(m.OutboxItem.text)),
            *s.scalars(select(m.LabelExample.text)),
            *(t or "" for t in s.scalars(select(m.ModerationAction.before_text))),
            *(t or "" for t in s.scalars(select(m.ModerationAction.after_text))),
        ]
    return "\n".join(parts)


def _analyse(db: Database, message_id: int) -> None:
    with db.session() as s:
        history.save_analysis(
            s,
            message_id,
            Analysis("question", 0.9, Sentiment.NEUTRAL, 0.5),
            Verdict(VerdictAction.ALLOW, 0.0),
        )


def _exported(db: Database, folder: Path, account: str = "shop") -> str:
    result = export_account(db, Settings(), account, folder, gate=PassingGate())
    return "".join(p.read_text(encoding="utf-8") for p in sorted(result.out_dir.iterdir()))


def _alice_and_bob(db: Database) -> None:
    """Alice: a sent reply (analysed, relabelled), an approved reply not sent yet, a queued
    best-of-n draft; and one message to a second account. Bob: a sent reply in the same chat."""
    sends, holds = _services(db)
    sent_msg, sent = queue_draft(
        db, "ALICE-1 where is my order?", "ALICE-R1 it ships today", chat_id=GROUP, user_id=ALICE
    )
    _analyse(db, sent_msg)
    sends.approve(OPERATOR, sent)
    sends.relabel(OPERATOR, sent, intent="question")
    _, pending = queue_draft(db, "ALICE-2 and my refund?", "ALICE-R2 soon", user_id=ALICE)
    holds.approve(OPERATOR, pending)
    queue_draft(db, "ALICE-3 hello?", "ALICE-C1 fine", user_id=ALICE, candidates=CANDIDATES)
    _, bobs = queue_draft(db, "BOB-1 opening hours?", "BOB-R1 9 to 5", chat_id=GROUP, user_id=BOB)
    sends.approve(OPERATOR, bobs)
    queue_draft(db, "ALICE-OTHER hi", "ALICE-R9 hi", account="other", user_id=ALICE)


def test_erasing_a_user_removes_their_data_everywhere_and_keeps_the_audit_rows(
    migrated_db: Database, tmp_path: Path
) -> None:
    _alice_and_bob(migrated_db)
    audit_before = _count(migrated_db, m.ModerationAction)

    removed = privacy.erase_user(migrated_db, OPERATOR, "console", ALICE)

    by_account = {r.account: dict(r.counts) for r in removed}
    assert by_account == {
        "other": {
            "messages": 1,
            "analyses": 0,
            "reply_drafts": 1,
            "draft_candidates": 0,
            "label_examples": 0,
            "outbox": 0,
            "outbox_cancelled": 0,
            "outbox_blanked": 0,
            "moderator_notices": 0,
            "audit_texts_cleared": 0,
        },
        "shop": {
            "messages": 4,  # three of hers and the bot's sent reply to the first
            "analyses": 1,
            "reply_drafts": 3,
            "draft_candidates": 2,
            "label_examples": 1,
            "outbox": 2,  # the sent reply and the approved one still pending
            "outbox_cancelled": 1,
            "outbox_blanked": 0,
            "moderator_notices": 0,
            "audit_texts_cleared": 2,  # the two approvals quoted her drafts
        },
    }
    assert "ALICE" not in _texts(migrated_db)
    assert "BOB-1" in _texts(migrated_db) and "BOB-R1" in _texts(migrated_db)
    # Every audit row stays, and each account got one for the erasure, naming no text.
    erasures = _count(migrated_db, m.ModerationAction, m.ModerationAction.action == "erase")
    assert erasures == 2
    assert _count(migrated_db, m.ModerationAction) == audit_before + 2
    with migrated_db.session() as s:
        rows = s.execute(
            select(m.PlatformUser.erased, m.PlatformUser.display_name).where(
                m.PlatformUser.platform_user_id == ALICE
            )
        ).all()
        notes = s.execute(
            select(m.Account.name, m.ModerationAction.note)
            .join(m.Account, m.Account.id == m.ModerationAction.account_id)
            .where(
                m.ModerationAction.action == ModerationKind.ERASE,
                m.ModerationAction.target == f"console:{ALICE}",
            )
        ).all()
    assert rows == [(True, None), (True, None)]
    assert sorted(notes) == [
        ("other", "removed 1 messages, 1 reply_drafts"),
        (
            "shop",
            "removed 4 messages, 1 analyses, 3 reply_drafts, 2 draft_candidates, "
            "1 label_examples, 2 outbox, 1 outbox_cancelled, 2 audit_texts_cleared",
        ),
    ]

    exported = _exported(migrated_db, tmp_path / "first")
    assert "BOB-R1" in exported and "ALICE" not in exported


def test_an_erased_user_who_writes_again_is_answered_but_never_exported(
    migrated_db: Database, tmp_path: Path
) -> None:
    _alice_and_bob(migrated_db)
    privacy.erase_user(migrated_db, OPERATOR, "console", ALICE, account="shop")
    assert "ALICE-OTHER" in _texts(migrated_db)  # --account: the other account keeps hers

    sends, _ = _services(migrated_db)
    _, again = queue_draft(migrated_db, "ALICE-4 me again", "ALICE-R4 welcome back", user_id=ALICE)
    sends.approve(OPERATOR, again)

    assert "ALICE-R4" in _texts(migrated_db)  # she was answered as anyone else
    exported = _exported(migrated_db, tmp_path / "later")
    assert "BOB-R1" in exported and "ALICE" not in exported
    with migrated_db.session() as s:
        erased = s.scalars(
            select(m.PlatformUser.erased)
            .join(m.Account, m.Account.id == m.PlatformUser.account_id)
            .where(m.PlatformUser.platform_user_id == ALICE, m.Account.name == "shop")
        ).one()
    assert erased
    # Erasing again removes what came since.
    (again_removed,) = privacy.erase_user(migrated_db, OPERATOR, "console", ALICE, "shop")
    assert again_removed.counts["messages"] == 2  # the message and the bot's reply


def test_unknown_users_accounts_and_actors_without_rights_change_nothing(
    migrated_db: Database,
) -> None:
    _alice_and_bob(migrated_db)
    before = _texts(migrated_db)
    with pytest.raises(NotFoundError, match="not known to any account"):
        privacy.erase_user(migrated_db, OPERATOR, "console", "404")
    with pytest.raises(NotFoundError, match="not known to account 'shop'"):
        privacy.erase_user(migrated_db, OPERATOR, "telegram", ALICE, "shop")
    with pytest.raises(NotFoundError, match="no account 'nope'"):
        privacy.erase_user(migrated_db, OPERATOR, "console", ALICE, "nope")
    shop_only = Actor(ActorKind.TELEGRAM, "7", "Mo", accounts=frozenset({"shop"}))
    with pytest.raises(PermissionDeniedError, match="'other'"):
        privacy.erase_user(migrated_db, shop_only, "console", ALICE)
    assert _texts(migrated_db) == before
    assert _count(migrated_db, m.ModerationAction, m.ModerationAction.action == "erase") == 0


def _age_everything(db: Database, days: int) -> None:
    then = utcnow() - timedelta(days=days)
    with db.session() as s:
        for model in (m.Message, m.ReplyDraft, m.OutboxItem, m.ModerationAction, m.LabelExample):
            s.execute(update(model).values(created_at=then))


def test_pruning_removes_old_data_but_never_queued_drafts_or_unsent_replies(
    migrated_db: Database,
) -> None:
    sends, holds = _services(migrated_db)
    old_msg, old = queue_draft(migrated_db, "OLD-1 question", "OLD-R1 answer", user_id=ALICE)
    _analyse(migrated_db, old_msg)
    sends.approve(OPERATOR, old)
    sends.relabel(OPERATOR, old, intent="question")
    _, waiting = queue_draft(migrated_db, "OLD-QUEUED still waiting", "OLD-QR draft")
    _, unsent = queue_draft(migrated_db, "OLD-UNSENT approved", "OLD-UR reply")
    holds.approve(OPERATOR, unsent)
    with migrated_db.session() as s:
        label_store.import_rows(
            s,
            account_id=None,
            task="intent",
            rows=[label_store.NewLabel("IMPORTED text", "question")],
            source="file:x",
        )
    _age_everything(migrated_db, 40)
    # Another chat: delivering this reply must not flush the old pending one.
    _, new = queue_draft(migrated_db, "NEW-1 question", "NEW-R1 answer", chat_id="600", user_id=BOB)
    sends.approve(OPERATOR, new)

    (result,) = privacy.prune(migrated_db, 30, OPERATOR)

    assert dict(result.counts) == {
        "messages": 2,  # the old message and the reply that was sent to it
        "analyses": 1,
        "reply_drafts": 1,
        "draft_candidates": 0,
        "label_examples": 1,  # the correction of that message; the imported label stays
        "outbox": 1,
        "outbox_cancelled": 0,
        "audit_texts_cleared": 2,  # the two old approvals
    }
    texts = _texts(migrated_db)
    assert "OLD-1" not in texts and "OLD-R1" not in texts
    for kept in ("OLD-QUEUED", "OLD-QR", "OLD-UNSENT", "OLD-UR", "IMPORTED", "NEW-1", "NEW-R1"):
        assert kept in texts
    assert _count(migrated_db, m.ReplyDraft, m.ReplyDraft.id == waiting) == 1
    assert _count(migrated_db, m.OutboxItem, m.OutboxItem.status == "pending") == 1
    with migrated_db.session() as s:
        (note,) = s.scalars(
            select(m.ModerationAction.note).where(m.ModerationAction.action == "prune")
        ).all()
        quoted = s.scalar(
            select(func.count())
            .select_from(m.ModerationAction)
            .where(
                or_(
                    m.ModerationAction.before_text.is_not(None),
                    m.ModerationAction.after_text.is_not(None),
                )
            )
        )
    assert note == "older than 30 days: removed 2 messages, 1 analyses, 1 reply_drafts, " + (
        "1 label_examples, 1 outbox, 2 audit_texts_cleared"
    )
    assert quoted == 1  # only the new approval still quotes its draft

    # The daily job: nothing more to remove, so no second audit row either.
    assert asyncio.run(prune_old_data(migrated_db, 30)) == 0
    assert _count(migrated_db, m.ModerationAction, m.ModerationAction.action == "prune") == 1


def test_a_retention_period_under_a_day_is_refused(migrated_db: Database) -> None:
    with pytest.raises(InputError, match="1 day or more"):
        privacy.prune(migrated_db, 0)


def test_the_retention_job_runs_daily(sqlite_url: str) -> None:
    scheduler = AsyncIOScheduler()
    add_retention(scheduler, Database(sqlite_url), 30)  # nothing connects until it runs
    job = scheduler.get_job("retention")
    assert job is not None
    assert job.trigger.interval == timedelta(days=1)
    assert job.func.__name__ == "retention"  # through `guarded`, which logs and counts errors
