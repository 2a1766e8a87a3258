"""The seam between platforms and the core.

A channel turns platform events into `Incoming` messages, hands each to the core's handler, and
delivers `Outgoing` replies. Implement `start`, `stop` and `send`; everything else is the core's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from bot.domain import Decision, Incoming, Outgoing

Handler = Callable[[Incoming], Awaitable[Decision]]


class SendError(Exception):
    """A send failed. The flags tell the outbox what it may do next.

    - `retry_after`: the platform asked us to wait this many seconds (rate limit) before
      sending to this chat again; safe to retry then.
    - `permanent`: retrying will never work (user blocked the bot, chat gone, text rejected).
    - `in_doubt`: the request may have been delivered (e.g. a read timeout); never resend
      automatically, a moderator decides.
    Otherwise the failure is transient and safe to retry with back-off.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        in_doubt: bool = False,
        unreachable_user: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent
        self.in_doubt = in_doubt
        self.unreachable_user = unreachable_user


class Channel(ABC):
    """One platform adapter. Subclasses override `start`, `stop` and `send`."""

    #: platform name stored with every message ("console", "telegram", ...)
    platform: str

    @abstractmethod
    async def start(self, handler: Handler) -> None:
        """Begin delivering messages to `handler`. Returns once the channel is running."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop taking messages and release connections. Safe to call twice."""

    @abstractmethod
    async def send(self, message: Outgoing) -> str:
        """Deliver one reply and return the platform's message id. Raise SendError on failure."""

    async def wait_closed(self) -> None:
        """Wait until the channel ends on its own (console: end of input). Default: never."""
        import asyncio

        await asyncio.Event().wait()
