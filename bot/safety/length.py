"""Draft length: too long for the configured reply cap, or empty."""

from __future__ import annotations

from typing import ClassVar

from bot.safety.registry import Check, Stage


class LengthCheck(Check):
    """Drafts over `max_reply_chars` (or blank) go to a moderator. Inputs are never capped."""

    name = "length"
    stages: ClassVar[frozenset[Stage]] = frozenset({"draft"})
    flags = ("too_long", "empty")

    def check(self, text: str) -> tuple[str, ...]:
        if not text.strip():
            return ("empty",)
        if len(text) > self.limits.max_reply_chars:
            return ("too_long",)
        return ()
