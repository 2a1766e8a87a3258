"""AUTOREPLY_REDACT_PII: personal data is scrubbed out of messages and the model's drafts before
they are stored, and the pipeline works on the scrubbed text; configured texts stay whole."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.config import Settings
from bot.domain import Candidate, Draft, DraftRequest, Incoming, Mode
from bot.outbox import Outbox
from bot.pipeline import Pipeline
from bot.service import build_analysis
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import CannedDrafter, RecordingChannel, account

SAID = "I am dana@example.org, call me on +44 20 7946 0958"
SAID_SCRUBBED = "I am <email>, call me on <phone>"
DRAFTED = "Sure Dana, we will write to dana@example.org today."
DRAFTED_SCRUBBED = "Sure Dana, we will write to <email> today."


class CandidateDrafter(CannedDrafter):
    """A best-of-n draft whose every candidate repeats the user's address."""

    async def adraft(self, request: DraftRequest) -> Draft:
        draft = await super().adraft(request)
        dropped = Candidate("mail dana@example.org", "mail dana@example.org", -2.0)
        return Draft(
            draft.text,
            draft.raw,
            False,
            "canned",
            candidates=(Candidate(DRAFTED, DRAFTED, -1.0), dropped),
        )


def _handle(db: Database, drafter: CannedDrafter, *, redact: bool) -> tuple[str, list[str]]:
    channel = RecordingChannel()
    outbox = Outbox(db, {channel.account: channel})
    classifier, gate = build_analysis(Settings(database_url=db.url))
    pipeline = Pipeline(
        db=db,
        classifier=classifier,
        gate=gate,
        drafter=drafter,
        outbox=outbox,
        accounts={"acct": account(mode=Mode.AUTO)},
        history_turns=6,
        redact_pii=redact,
    )
    incoming = Incoming("console", "acct", "c1", "1", "u1", SAID)

    async def go() -> None:
        await pipeline.handle(incoming)
        await outbox.idle()

    asyncio.run(go())
    with db.session() as s:
        stored = s.scalars(
            select(m.Message.text).where(m.Message.direction == m.Direction.INBOUND)
        ).one()
        drafts = [
            *s.scalars(select(m.ReplyDraft.text)),
            *s.scalars(select(m.ReplyDraft.raw_text)),
            *s.scalars(select(m.DraftCandidate.text)),
            *s.scalars(select(m.DraftCandidate.raw_text)),
            *s.scalars(select(m.OutboxItem.text)),
        ]
    return stored, drafts


def test_messages_and_drafts_are_scrubbed_before_they_are_stored(migrated_db: Database) -> None:
    drafter = CandidateDrafter(text=DRAFTED)
    stored, drafts = _handle(migrated_db, drafter, redact=True)
    assert stored == SAID_SCRUBBED
    assert drafter.requests[0].text == SAID_SCRUBBED  # the model never saw the address either
    assert drafts and all("dana@example.org" not in text for text in drafts)
    assert DRAFTED_SCRUBBED in drafts
    assert "mail <email>" in drafts


def test_the_configured_fallback_reply_is_left_whole(migrated_db: Database) -> None:
    fallback = "Sorry, please call us on +44 20 7946 0000."
    drafter = CannedDrafter(text=fallback, fallback_used=True)
    stored, drafts = _handle(migrated_db, drafter, redact=True)
    assert stored == SAID_SCRUBBED
    assert fallback in drafts


def test_redaction_is_off_by_default(migrated_db: Database) -> None:
    assert Settings().redact_pii is False
    stored, drafts = _handle(migrated_db, CannedDrafter(text=DRAFTED), redact=False)
    assert (stored, drafts[0]) == (SAID, DRAFTED)
