"""The account's blocklist: words and phrases its replies must never contain.

Matched on the folded text of `normalize.fold` (look-alike letters, leetspeak, spaced-out
letters undone), entries folded the same way, so "c0mpetitor" or "ｃｈｅａｐ" still match.
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from bot.safety.context import CheckContext
from bot.safety.normalize import fold
from bot.safety.phrases import find_phrases, plain
from bot.safety.registry import ContextCheck, Stage


class BlocklistCheck(ContextCheck):
    """Flags a draft that contains any `blocklist` entry of `[accounts.safety]`, as whole
    words (case, width, curly quotes and disguises do not matter)."""

    name = "blocklist"
    stages: ClassVar[frozenset[Stage]] = frozenset({"draft"})
    flags = ("blocklisted",)

    def check_with(self, text: str, context: CheckContext) -> tuple[str, ...]:
        blocklist = context.rules.blocklist
        if not blocklist:
            return ()
        return ("blocklisted",) if find_phrases(plain(fold(text).text), _folded(blocklist)) else ()


@lru_cache(maxsize=64)  # one entry per account's list; the pattern is cached the same way
def _folded(entries: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(fold(entry).text for entry in entries)
