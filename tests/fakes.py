"""Test doubles that subclass or implement the real interfaces (no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.channels.base import Channel, SendError
from bot.core import Core
from bot.domain import Draft, Outgoing, Turn


@dataclass
class Sent:
    message: Outgoing
    at: float


class RecordingChannel(Channel):
    """A channel that records what it sends; `fail` may raise SendError for chosen messages."""

    def __init__(
        self,
        platform: str = "console",
        fail: Callable[[Outgoing, int], SendError | None] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.platform = platform
        self.account = "acct"
        self.sent: list[Sent] = []
        self.attempts: list[Outgoing] = []
        self._fail = fail
        self._delay = delay

    async def start(self, core: Core) -> None:
        self.core = core

    async def stop(self) -> None:
        return None

    async def send(self, message: Outgoing) -> str:
        self.attempts.append(message)
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._fail is not None:
            error = self._fail(message, len(self.attempts))
            if error is not None:
                raise error
        self.sent.append(Sent(message, asyncio.get_running_loop().time()))
        return f"p{len(self.sent)}"


@dataclass
class CannedDrafter:
    """Implements the pipeline's Drafter protocol with fixed replies, for policy tests."""

    text: str = "Thanks for reaching out, we are looking into it."
    fallback_used: bool = False
    calls: list[tuple[tuple[Turn, ...], str]] = field(default_factory=list)

    async def adraft(self, history: Sequence[Turn], text: str) -> Draft:
        self.calls.append((tuple(history), text))
        return Draft(
            text=self.text,
            raw=self.text,
            fallback_used=self.fallback_used,
            model="canned",
        )
