"""The seam between platforms and the core.

A channel turns platform events into `Incoming` messages, hands each to the core's handler, and
delivers `Outgoing` replies. Implement `start`, `stop` and `send`; everything else is the core's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TYPE_CHECKING

from bot.domain import Incoming, Outgoing

if TYPE_CHECKING:
    from bot.core import Core


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
    """One platform adapter. Subclasses override `start`, `stop` and `send`, and set
    `platform` and `account`; the optional hooks below have safe defaults."""

    #: platform name stored with every message ("console", "telegram", ...)
    platform: str
    #: name of the account this channel serves (see bot/accounts.py)
    account: str
    #: chat that receives a card for every queued draft, if the platform has one
    review_chat_id: str | None = None

    @property
    def ready(self) -> bool:
        """Whether `send` can reach the platform now. The outbox leaves an account's replies
        pending (without using up a try) while its channel is down or still connecting."""
        return True

    @abstractmethod
    async def start(self, core: Core) -> None:
        """Begin delivering messages to `core`. Returns once the channel is running."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop taking messages. Sending must keep working until `close`. Safe to call twice."""

    async def close(self) -> None:  # noqa: B027  (optional hook: most channels hold nothing)
        """Release connections, after the outbox has stopped sending. Default: nothing."""

    @abstractmethod
    async def send(self, message: Outgoing) -> str:
        """Deliver one reply and return the platform's message id. Raise SendError on failure."""

    def activity(self, incoming: Incoming) -> AbstractAsyncContextManager[None]:
        """Wraps drafting a reply to `incoming`, e.g. to show a typing indicator."""
        return nullcontext()

    async def wait_closed(self) -> None:
        """Wait until the channel ends on its own (console: end of input). Default: never."""
        import asyncio

        await asyncio.Event().wait()
