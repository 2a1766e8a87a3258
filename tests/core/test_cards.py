"""Moderators' cards: the best-of-n line, and cards that still fit one Telegram message."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.cards import action_footer, card_text
from bot.domain import Candidate, DraftStatus, DropReason, QueueItem

ITEM = QueueItem(
    draft_id=7,
    status=DraftStatus.QUEUED,
    created_at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
    platform="telegram",
    account="shop",
    chat_id="500",
    user_name="Ann",
    message_id=3,
    message_text="where is my order?",
    draft_text="It ships today!",
    raw_text=" It ships today!",
    fallback_used=False,
    intent="question",
    intent_score=0.9,
    sentiment="neutral",
    sentiment_score=0.6,
    verdict="allow",
    toxicity=0.01,
    flags=(),
    input_flags=(),
    model_version="tiny",
    account_id=1,
    conversation_id=1,
)


def _c(text: str, score: float, dropped: DropReason | None = None) -> Candidate:
    return Candidate(text=text, raw=text, score=score, new_tokens=4, dropped=dropped)


def test_best_of_n_card_names_the_dropped_reasons() -> None:
    item = replace(
        ITEM,
        candidates=(
            _c("It ships today!", -0.7),
            _c("It ships soon.", -1.0, DropReason.OUTRANKED),
            _c("ok ok ok ok", -0.2, DropReason.REPETITIVE),
            _c("you idiot", -0.9, DropReason.BLOCKED),
        ),
    )
    lines = card_text(item).splitlines()
    assert "Candidates: best of 4 · 2 dropped (repetitive, blocked)" in lines
    # The line sits with the analysis, above the draft.
    assert lines.index("Candidates: best of 4 · 2 dropped (repetitive, blocked)") < lines.index(
        "Draft:"
    )


def test_counts_repeated_reasons_and_says_when_none_was_dropped() -> None:
    looped = replace(
        ITEM,
        candidates=(
            _c("It ships today!", -0.7),
            *(_c("ok ok ok ok", -0.2, DropReason.REPETITIVE) for _ in range(3)),
        ),
    )
    assert "Candidates: best of 4 · 3 dropped (repetitive ×3)" in card_text(looped)
    fine = replace(ITEM, candidates=(_c("a", -0.5), _c("b", -0.6, DropReason.OUTRANKED)))
    assert "Candidates: best of 2 · none dropped" in card_text(fine)


def test_single_sample_cards_are_unchanged() -> None:
    assert card_text(replace(ITEM, candidates=(_c("It ships today!", -0.7),))) == card_text(ITEM)
    assert "Candidates" not in card_text(ITEM)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize("char", ["m", "😀"], ids=["ascii", "emoji (2 UTF-16 units)"])
def test_a_card_with_every_part_at_its_longest_fits_one_message(char: str) -> None:
    reasons = [r for r in DropReason if r is not DropReason.OUTRANKED]
    item = replace(
        ITEM,
        chat_id="-100" + "9" * 60,
        user_name="N" * 256,
        message_text=char * 10_000,
        draft_text="d" * 10_000,
        verdict="block",
        flags=("toxic", "pii", "long"),
        input_flags=("insult",),
        fallback_used=True,
        candidates=tuple(_c("x" * 500, -1.0, reasons[n % len(reasons)]) for n in range(16)),
    )
    text = card_text(item, reason="the safety gate blocked the draft")
    # Room is left for the footer a moderator's action appends.
    assert _utf16(f"{text}\n\n{action_footer('approve', 'M' * 128, item.created_at)}") <= 4096
    assert "Candidates: best of 16 · 16 dropped (empty ×4, gibberish ×4, repetitive ×4" in text
    # The quoted message gives way; the draft keeps its full 1,200 units.
    assert text.endswith("Draft:\n" + "d" * 1199 + "…")
    assert char * 100 in text
