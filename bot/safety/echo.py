"""A draft that throws the user's insult back at them.

When an insulting word of the user's message reappears in the draft ("you idiots" -> "we are
not idiots"), a moderator should look: the model tends to mirror wording, and a mirrored insult
reads as an insult from the brand even when the toxicity score stays low. Hand-written word
list: alt-profanity-check is a linear model with no list to reuse, and it misses mild insults
("useless", "clown") that are harmless on their own but not as an echo.
"""

from __future__ import annotations

import re
from typing import ClassVar

from bot.safety.context import CheckContext
from bot.safety.normalize import fold
from bot.safety.registry import ContextCheck, Stage


def _words(*lines: str) -> frozenset[str]:
    return frozenset(" ".join(lines).split())


# Stems; a word counts when it is a stem plus at most one of _SUFFIXES ("idiots", "idiotic").
INSULTS = _words(
    "idiot stupid dumb moron imbecile useless incompetent pathetic clown loser liar scammer",
    "crook thief thieves garbage trash crap shit bullshit fuck jerk bastard asshole arse",
    "arsehole dick prick twat cunt bitch retard worthless clueless brainless dumbass wanker",
    "scum",
)
# Endings of insult words: "idiots", "idiotic", "stupidity", "shitty", "shithead".
_SUFFIXES: tuple[str, ...] = ("", "s", "es", "ed", "ing", "y", "ic", "ity", "ty", "ish", "er")
_SUFFIXES += ("ers", "head", "heads")
_WORD = re.compile(r"[^\W\d_]+")


def _stem(word: str) -> str | None:
    for suffix in _SUFFIXES:
        base = word[: len(word) - len(suffix)] if suffix else word
        if word.endswith(suffix) and base in INSULTS:
            return base
    return None


def insults(text: str) -> set[str]:
    """The insult stems in `text`, disguises undone ("1d10t", "і d і о t")."""
    return {stem for w in _WORD.findall(fold(text).text) if (stem := _stem(w)) is not None}


class InsultEchoCheck(ContextCheck):
    name = "insult_echo"
    stages: ClassVar[frozenset[Stage]] = frozenset({"draft"})
    flags = ("insult_echo",)

    def check_with(self, text: str, context: CheckContext) -> tuple[str, ...]:
        if not context.user_text:
            return ()
        said = insults(context.user_text)
        return ("insult_echo",) if said and said & insults(text) else ()
