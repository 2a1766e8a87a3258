"""Persona or system text leaking into a draft.

A model that repeats its instructions ("You are the support account of Shop. Never mention
prices ...") shows users how it is steered and invites injection. The tell is a long run of
words shared with the persona: PERSONA_NGRAM words in a row. Short shared phrases ("the
support team of Shop") are normal in replies, so shorter overlaps pass.
"""

from __future__ import annotations

import re
from typing import ClassVar

from bot.safety.context import CheckContext
from bot.safety.phrases import plain
from bot.safety.registry import ContextCheck, Stage

PERSONA_NGRAM = 8  # words in a row shared with the persona that count as a leak
MIN_NGRAM = 6  # a persona shorter than this is too short to tell a leak from a coincidence
_WORD = re.compile(r"\w+")


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def shares_run(text: str, persona: str, n: int = PERSONA_NGRAM) -> bool:
    """Whether `text` repeats min(n, persona length) words of `persona` in a row."""
    source = _WORD.findall(plain(persona))
    n = min(n, len(source))
    if n < MIN_NGRAM:
        return False
    return not _ngrams(source, n).isdisjoint(_ngrams(_WORD.findall(plain(text)), n))


class PersonaLeakCheck(ContextCheck):
    name = "persona_leak"
    stages: ClassVar[frozenset[Stage]] = frozenset({"draft"})
    flags = ("persona_leak",)

    def check_with(self, text: str, context: CheckContext) -> tuple[str, ...]:
        if context.persona and shares_run(text, context.persona):
            return ("persona_leak",)
        return ()
