"""Phrase matching shared by the blocklist and the commitment check.

Both match on a plain form of the text: NFKC (full-width and ligature forms fold to ASCII),
case-folded, curly quotes straightened, zero-width characters removed, whitespace runs made
one space. Drafts come from our own model, so the heavier folding of user input (leetspeak,
homoglyphs) is not needed here. A phrase matches whole words only ("ass" never matches
"class") and its spaces match any run of spaces or hyphens ("free shipping", "free-shipping").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
_SPACES = re.compile(r"\s+")

Span = tuple[int, int]


def plain(text: str) -> str:
    """The form phrases are matched on (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_QUOTES)
    return _SPACES.sub(" ", text.casefold()).strip()


@lru_cache(maxsize=512)
def phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for any of `phrases` as whole words, on `plain` text; None for no phrases.
    Cached: an account's lists are the same tuple on every call."""
    alternatives = []
    for phrase in phrases:
        words = plain(phrase).replace("-", " ").split()
        if words:
            alternatives.append(r"[\s-]+".join(map(re.escape, words)))
    if not alternatives:
        return None
    # Longest first, so "full refund" wins over "refund" where both are listed.
    alternatives.sort(key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def find_phrases(plain_text: str, phrases: tuple[str, ...]) -> list[Span]:
    """Spans of `phrases` in text already in `plain` form."""
    pattern = phrase_pattern(phrases)
    return [] if pattern is None else [m.span() for m in pattern.finditer(plain_text)]


def overlaps(span: Span, others: Iterable[Span]) -> bool:
    """Whether `span` shares at least one character with one of `others`."""
    return any(start < span[1] and span[0] < end for start, end in others)
