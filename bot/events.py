"""What the message-handling core reports as it works, for whoever counts it.

The pipeline calls these hooks; it knows nothing of Prometheus. `bot/web/metrics.py` turns them
into metrics for `/metrics`. The base class does nothing, so a process that exports no metrics
(the CLI, most tests) pays nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from bot.domain import DecisionAction, VerdictAction

# Which text the safety gate judged: the user's message, or the draft chosen to answer it.
GateStage = Literal["input", "draft"]


class ServiceEvents:
    """Observer of the pipeline. Override the hooks you count; the defaults do nothing.

    Hooks are called on the event loop (and may be called from worker threads), once per event,
    so they must be quick, must not block and must not raise.
    """

    def generated(self, account: str, seconds: float) -> None:
        """A draft for `account` came back from the drafter after `seconds` (batching included)."""

    def verdict(self, stage: GateStage, action: VerdictAction, flags: Sequence[str]) -> None:
        """The safety gate judged a text: its action (allow / review / block) and flags."""

    def decided(self, account: str, action: DecisionAction, drafted: bool) -> None:
        """A message of `account` was handled to its decision; `drafted`: a draft was stored."""


NO_EVENTS = ServiceEvents()
