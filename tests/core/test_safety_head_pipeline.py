"""A promoted safety head makes the pipeline's verdict stricter; the one thing it may clear is
toxicity that only a word for a group of people explains (`toxic_identity`).

The head is a real one saved as `autoreply train classifier --task safety` saves it, on the tiny
offline GPT-2, with a zero score layer: every label is equally likely, so its first label wins
for every text (tests/nlp/head_helpers.py). Real storage, the real lexical rules and the real
safety gate.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.accounts import Account
from bot.config import Settings
from bot.domain import Decision, DecisionAction, DraftStatus, Incoming, Mode
from bot.nlp.heads import SafetyHeadPolicy, load_account_classifier
from bot.outbox import Outbox
from bot.pipeline import Pipeline
from bot.service import build_analysis
from bot.storage import drafts
from bot.storage.db import Database
from tests.fakes import CannedDrafter, RecordingChannel, account
from tests.nlp.head_helpers import make_head

HARMLESS = "hi, what time do you open on sundays?"


def _handle(
    db: Database,
    acct: Account,
    settings: Settings,
    heads: dict[str, tuple[str, str]],
    text: str = HARMLESS,
    message_id: str = "1",
) -> tuple[Decision, RecordingChannel]:
    channel = RecordingChannel()
    rules, gate = build_analysis(settings)
    classifier = load_account_classifier(settings, acct, heads)
    outbox = Outbox(db, {"acct": channel})
    pipeline = Pipeline(
        db=db,
        classifier=rules,
        classifiers={"acct": classifier},
        gate=gate,
        drafter=CannedDrafter(),
        outbox=outbox,
        accounts={"acct": acct},
        history_turns=4,
        safety_head=SafetyHeadPolicy.from_settings(settings),
    )
    incoming = Incoming(
        platform="console",
        account="acct",
        chat_id="c1",
        message_id=message_id,
        user_id="u1",
        user_name="Dana",
        text=text,
    )

    async def go() -> Decision:
        decision = await pipeline.handle(incoming)
        await outbox.idle()
        return decision

    return asyncio.run(go()), channel


def test_a_promoted_safety_head_that_says_hate_holds_an_ordinary_message(
    migrated_db: Database, tiny_model_dir: Path, tmp_path: Path
) -> None:
    # Both labels at 0.5: a confidence of 0.5 lets the head's first label count.
    settings = Settings(database_url=migrated_db.url, device="cpu", safety_head_confidence=0.5)
    acct = account(mode=Mode.AUTO)
    # First label wins: this head calls every text hate, which the defaults block.
    head = make_head(tiny_model_dir, tmp_path / "safety", "safety", ["hate", "neither"])
    decision, channel = _handle(migrated_db, acct, settings, {"safety": ("safety-v1", str(head))})

    assert decision.action is DecisionAction.REVIEW, decision
    assert channel.sent == []
    with migrated_db.session() as s:
        queued = drafts.list_drafts(s, (DraftStatus.QUEUED,))
    assert len(queued) == 1
    # The message is flagged by the head; the (harmless) draft waits for a moderator.
    assert "safety_hate" in queued[0].input_flags


def test_a_safety_head_that_says_neither_does_not_loosen_the_rules(
    migrated_db: Database, tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(database_url=migrated_db.url, device="cpu")
    acct = account(mode=Mode.AUTO)
    head = make_head(tiny_model_dir, tmp_path / "safety", "safety", ["neither", "hate"])
    decision, channel = _handle(migrated_db, acct, settings, {"safety": ("safety-v1", str(head))})

    # The head allows it and so do the rules: the ordinary message is answered as usual.
    assert decision.action is DecisionAction.AUTO
    assert len(channel.sent) == 1


def test_a_head_that_sees_no_hate_lets_a_user_say_they_are_gay(
    migrated_db: Database, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """alt-profanity-check scores "gay" as profanity (bot/safety/identity_terms.py): the rules
    alone send this to review; the head, which does not flag it, has the last word."""
    settings = Settings(database_url=migrated_db.url, device="cpu")
    acct = account(mode=Mode.AUTO)
    text = "I am gay and my husband loves your coffee"
    alone, _ = _handle(migrated_db, acct, settings, {}, text=text)
    assert alone.action is DecisionAction.REVIEW
    head = make_head(tiny_model_dir, tmp_path / "safety", "safety", ["neither", "hate"])
    decision, channel = _handle(
        migrated_db, acct, settings, {"safety": ("safety-v1", str(head))}, text, "2"
    )
    assert decision.action is DecisionAction.AUTO, decision
    assert len(channel.sent) == 1
