"""Gibberish and repetition in a draft, judged by the best-of-n filters of
`bot/nlp/candidates.py` (one piece of code for one job). The generator already drops such
candidates; this catches a single-sample draft and a moderator's edit."""

from __future__ import annotations

from typing import ClassVar

from bot.domain import DropReason
from bot.nlp.candidates import drop_reason
from bot.safety.registry import Check, Stage

_FLAGS = {
    # Punctuation or symbols only: not blank (the length check's "empty"), not a reply either.
    DropReason.EMPTY: "gibberish",
    DropReason.GIBBERISH: "gibberish",
    DropReason.REPETITIVE: "repetitive",
}


class QualityCheck(Check):
    name = "quality"
    stages: ClassVar[frozenset[Stage]] = frozenset({"draft"})
    flags = ("gibberish", "repetitive")

    def check(self, text: str) -> tuple[str, ...]:
        if not text.strip():
            return ()  # the length check flags it "empty"
        reason = drop_reason(text)
        if reason is None or reason not in _FLAGS:
            return ()
        return (_FLAGS[reason],)
