"""The registry of flag-raising checks, keyed by name.

A check family (PII, length, language, ...) subclasses `Check` and is registered once in
`bot/safety/__init__.py`; `SafetyGate` builds every registered check that applies to the stage
it judges. Toxicity is not a check: it is a model score the gate turns into the "toxic" flag.

Most checks judge the text alone (`Check.check`). A check that needs the user's message, the
persona or the account's lists subclasses `ContextCheck` and overrides `check_with`; the gate
calls `check_with(text, context)` on every check.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

from bot.safety.context import NO_CONTEXT, CheckContext

Stage = Literal["input", "draft"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Settings the checks read (filled from `Settings` by the gate)."""

    max_reply_chars: int = 600


class Check(ABC):
    """A family of flags raised from the text alone.

    Set `name` (the registry key), `stages` (which texts it applies to) and `flags` (every flag
    it can raise, for docs and tests), and override `check`.
    """

    name: ClassVar[str]
    stages: ClassVar[frozenset[Stage]]
    flags: ClassVar[tuple[str, ...]]

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    @abstractmethod
    def check(self, text: str) -> tuple[str, ...]:
        """The flags `text` raises, a subset of `flags` in that order; () when clean."""

    def check_with(self, text: str, context: CheckContext) -> tuple[str, ...]:
        """What the gate calls; a check of the text alone ignores the context."""
        return self.check(text)


class ContextCheck(Check):
    """A check that reads the context (the user's message, the persona, the account's rules).

    Override `check_with`; `check(text)` runs it with an empty context.
    """

    def check(self, text: str) -> tuple[str, ...]:
        return self.check_with(text, NO_CONTEXT)

    @abstractmethod
    def check_with(self, text: str, context: CheckContext) -> tuple[str, ...]:
        """The flags `text` raises in `context`, a subset of `flags` in that order."""


_CHECKS: dict[str, type[Check]] = {}


def register_check(cls: type[Check]) -> type[Check]:
    """Add a check class under `cls.name`; a second class with the same name is refused."""
    if cls.name in _CHECKS:
        raise ValueError(
            f"a safety check named {cls.name!r} is already registered "
            f"({_CHECKS[cls.name].__qualname__}); give {cls.__qualname__} another name"
        )
    _CHECKS[cls.name] = cls
    return cls


def registered_checks() -> dict[str, type[Check]]:
    """Name -> class, in registration order (which is the order flags are reported in)."""
    return dict(_CHECKS)
