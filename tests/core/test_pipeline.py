"""The pipeline end to end in-process: real storage (both backends), real analysis and gate,
a canned drafter where the test needs a known draft."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy import func, select

from bot.config import Settings
from bot.domain import (
    Candidate,
    ChatKind,
    DecisionAction,
    Draft,
    DraftRequest,
    DropReason,
    Incoming,
    Mode,
    Role,
    Turn,
)
from bot.outbox import Outbox
from bot.pipeline import Pipeline
from bot.service import build_analysis
from bot.storage import drafts as draft_store
from bot.storage import history
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import CannedDrafter, RecordingChannel, account


def _pipeline(
    db: Database, mode: Mode, drafter: object, channel: RecordingChannel
) -> tuple[Pipeline, Outbox]:
    settings = Settings(database_url=db.url, mode=mode)
    classifier, gate = build_analysis(settings)
    outbox = Outbox(db, {channel.account: channel})
    pipeline = Pipeline(
        db=db,
        classifier=classifier,
        gate=gate,
        drafter=drafter,  # type: ignore[arg-type]
        outbox=outbox,
        accounts={"acct": account(mode=mode)},
        history_turns=6,
    )
    return pipeline, outbox


def _msg(n: int, text: str, **kw: object) -> Incoming:
    return Incoming(
        platform="console",
        account="acct",
        chat_id=str(kw.pop("chat", "c1")),
        message_id=str(n),
        user_id="u1",
        user_name="Dana",
        text=text,
        **kw,  # type: ignore[arg-type]
    )


def _count(db: Database, model: type[m.Base], *where: object) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


def test_auto_mode_sends_and_stores_every_stage(migrated_db: Database) -> None:
    channel = RecordingChannel()
    pipeline, outbox = _pipeline(migrated_db, Mode.AUTO, CannedDrafter(), channel)

    async def go() -> list[DecisionAction]:
        first = await pipeline.handle(_msg(1, "hello there"))
        second = await pipeline.handle(_msg(2, "where is my order #1234?"))
        await outbox.idle()
        return [first.action, second.action]

    assert asyncio.run(go()) == [DecisionAction.AUTO, DecisionAction.AUTO]
    assert [s.message.reply_to_message_id for s in channel.sent] == ["1", "2"]
    inbound = m.Message.direction == m.Direction.INBOUND
    assert _count(migrated_db, m.Message, inbound) == 2
    assert _count(migrated_db, m.Message, m.Message.direction == m.Direction.OUTBOUND) == 2
    assert _count(migrated_db, m.Analysis) == 2
    assert _count(migrated_db, m.ReplyDraft, m.ReplyDraft.status == m.DraftStatus.SENT) == 2
    with migrated_db.session() as s:
        question = s.scalars(
            select(m.Analysis).join(m.Message).where(m.Message.text.like("where%"))
        ).one()
        assert question.intent == "question"
        assert 0.0 < question.intent_score <= 1.0


def test_review_all_queues_and_sends_nothing(migrated_db: Database) -> None:
    channel = RecordingChannel()
    pipeline, _ = _pipeline(migrated_db, Mode.REVIEW_ALL, CannedDrafter(), channel)
    decision = asyncio.run(pipeline.handle(_msg(1, "hi, can you help me?")))
    assert decision.action is DecisionAction.REVIEW
    assert decision.reply_text == CannedDrafter.text
    assert channel.sent == []
    assert _count(migrated_db, m.ReplyDraft, m.ReplyDraft.status == m.DraftStatus.QUEUED) == 1
    assert _count(migrated_db, m.OutboxItem) == 0


def test_flagged_draft_goes_to_review_even_in_auto(migrated_db: Database) -> None:
    channel = RecordingChannel()
    leaky = CannedDrafter(text="Sure, write to jane.doe@example.com or call +1 415 555 0199.")
    pipeline, _ = _pipeline(migrated_db, Mode.AUTO, leaky, channel)
    decision = asyncio.run(pipeline.handle(_msg(1, "who do I contact?")))
    assert decision.action is DecisionAction.REVIEW
    assert "pii_email" in decision.reason
    assert channel.sent == []


def test_duplicate_delivery_is_a_no_op(migrated_db: Database) -> None:
    drafter = CannedDrafter()
    pipeline, outbox = _pipeline(migrated_db, Mode.AUTO, drafter, RecordingChannel())

    async def go() -> list[bool]:
        one = await pipeline.handle(_msg(1, "hello", update_id=77))
        two = await pipeline.handle(_msg(1, "hello", update_id=77))
        await outbox.idle()
        return [one.duplicate, two.duplicate]

    assert asyncio.run(go()) == [False, True]
    assert len(drafter.calls) == 1
    assert _count(migrated_db, m.Message, m.Message.direction == m.Direction.INBOUND) == 1
    assert _count(migrated_db, m.ProcessedUpdate) == 1


def test_group_chatter_is_kept_as_context_only(migrated_db: Database) -> None:
    drafter = CannedDrafter()
    pipeline, outbox = _pipeline(migrated_db, Mode.AUTO, drafter, RecordingChannel())

    async def go() -> DecisionAction:
        chatter = await pipeline.handle(
            _msg(1, "anyone tried the new blue one?", chat_kind=ChatKind.GROUP, addressed=False)
        )
        assert chatter.action is DecisionAction.IGNORE
        decision = await pipeline.handle(
            _msg(2, "@shopbot is the blue one in stock?", chat_kind=ChatKind.GROUP)
        )
        await outbox.idle()
        return decision.action

    assert asyncio.run(go()) is DecisionAction.AUTO
    (history_seen, text) = drafter.calls[0]
    assert text == "@shopbot is the blue one in stock?"
    assert history_seen == (Turn(Role.USER, "anyone tried the new blue one?", "Dana"),)
    assert _count(migrated_db, m.Analysis) == 2  # chatter is analysed too


def test_history_includes_the_bots_own_replies(migrated_db: Database) -> None:
    drafter = CannedDrafter(text="Happy to help!")
    pipeline, outbox = _pipeline(migrated_db, Mode.AUTO, drafter, RecordingChannel())

    async def go() -> None:
        await pipeline.handle(_msg(1, "hi"))
        await outbox.idle()
        await pipeline.handle(_msg(2, "thanks"))
        await outbox.idle()

    asyncio.run(go())
    assert drafter.calls[1][0] == (
        Turn(Role.USER, "hi", "Dana"),
        Turn(Role.BOT, "Happy to help!"),
    )


def test_mode_off_and_blank_text_are_ignored(migrated_db: Database) -> None:
    pipeline, _ = _pipeline(migrated_db, Mode.OFF, CannedDrafter(), RecordingChannel())
    assert asyncio.run(pipeline.handle(_msg(1, "hello"))).reason == "mode is off"
    pipeline, _ = _pipeline(migrated_db, Mode.AUTO, CannedDrafter(), RecordingChannel())
    assert asyncio.run(pipeline.handle(_msg(2, "   "))).reason == "no text to answer"


def test_unhandled_messages_are_resumed_after_a_crash(migrated_db: Database) -> None:
    with migrated_db.session() as s:  # stored, then the process died before handling it
        history.ingest(s, _msg(1, "is anyone there?"))
    channel = RecordingChannel()
    pipeline, outbox = _pipeline(migrated_db, Mode.AUTO, CannedDrafter(), channel)

    async def go() -> int:
        resumed = await pipeline.resume_unhandled("console", "acct")
        await pipeline.drain()
        await outbox.idle()
        return resumed

    assert asyncio.run(go()) == 1
    assert len(channel.sent) == 1
    assert _count(migrated_db, m.Message, m.Message.handled_at.is_(None)) == 0


@dataclass
class SlowFirstDrafter:
    """The first draft takes longest: replies must still leave in arrival order."""

    calls: list[str] = field(default_factory=list)

    async def adraft(self, request: DraftRequest) -> Draft:
        text = request.text
        self.calls.append(text)
        await asyncio.sleep(0.2 if len(self.calls) == 1 else 0.0)
        return Draft(text=f"re: {text}", raw=text, fallback_used=False, model="slow")


def test_one_chat_is_answered_in_arrival_order(migrated_db: Database) -> None:
    channel = RecordingChannel()
    pipeline, outbox = _pipeline(migrated_db, Mode.AUTO, SlowFirstDrafter(), channel)

    async def go() -> None:
        await asyncio.gather(*(pipeline.handle(_msg(n, f"question {n}")) for n in range(5)))
        await outbox.idle()

    asyncio.run(go())
    assert [s.message.text for s in channel.sent] == [f"re: question {n}" for n in range(5)]


@dataclass
class BestOfDrafter:
    """Returns ranked candidates as the generator does for best-of-n."""

    candidates: tuple[Candidate, ...]

    async def adraft(self, request: DraftRequest) -> Draft:
        best = self.candidates[0]
        return Draft(best.text, best.raw, False, "canned", candidates=self.candidates)


def test_best_of_n_skips_a_blocked_candidate_and_stores_them_all(migrated_db: Database) -> None:
    """The gate has the last word over the generator's ranking: the best-scored candidate is
    abusive, so the next one is sent, and every candidate is stored with why it was not."""
    abusive = Candidate("You are a fucking idiot.", " You are a fucking idiot.", -0.4)
    good = Candidate(
        "Sorry, we are on it.", " Sorry, we are on it.", -0.9, dropped=DropReason.OUTRANKED
    )
    empty = Candidate("", " ...", -0.2, dropped=DropReason.EMPTY)
    channel = RecordingChannel()
    drafter = BestOfDrafter((abusive, good, empty))
    pipeline, outbox = _pipeline(migrated_db, Mode.AUTO, drafter, channel)

    async def go() -> int | None:
        decision = await pipeline.handle(_msg(1, "where is my order?"))
        await outbox.idle()
        return decision.draft_id

    draft_id = asyncio.run(go())
    assert draft_id is not None
    assert [s.message.text for s in channel.sent] == [good.text]
    with migrated_db.session() as s:
        stored = draft_store.candidates(s, draft_id)
        row = s.get(m.ReplyDraft, draft_id)
        assert row is not None and row.text == good.text and not row.fallback_used
    assert [(c.text, c.dropped) for c in stored] == [
        (good.text, None),
        (abusive.text, DropReason.BLOCKED),
        ("", DropReason.EMPTY),
    ]


def test_best_of_n_falls_back_only_when_nothing_survives(migrated_db: Database) -> None:
    abusive = Candidate("You are a fucking idiot.", " You are a fucking idiot.", -0.4)
    empty = Candidate("", " ...", -0.2, dropped=DropReason.EMPTY)
    channel = RecordingChannel()
    pipeline, _ = _pipeline(migrated_db, Mode.REVIEW_ALL, BestOfDrafter((abusive, empty)), channel)
    decision = asyncio.run(pipeline.handle(_msg(1, "where is my order?")))
    assert decision.draft_id is not None
    with migrated_db.session() as s:
        row = s.get(m.ReplyDraft, decision.draft_id)
        assert row is not None and row.fallback_used
        assert row.text == account(mode=Mode.REVIEW_ALL).style.fallback_reply
        assert row.raw_text == abusive.raw  # what the model said stays visible
        reasons = [c.dropped for c in draft_store.candidates(s, decision.draft_id)]
    assert reasons == [DropReason.BLOCKED, DropReason.EMPTY]
