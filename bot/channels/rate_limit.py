"""Per-chat send pacing for platforms with per-chat, per-group and overall message limits.

Telegram's published limits are about 1 message per second in one chat, 20 messages per
minute in one group and 30 messages per second overall. `ChatRateLimiter` keeps a bot under
them with aiolimiter's leaky buckets:

- every chat: `AsyncLimiter(1, 1 / per_chat_per_s)`, a burst of one, then one per second;
- every group, in addition: `AsyncLimiter(per_group_per_min, 60)`. A leaky bucket lets a full
  bucket through at once, so an idle group may take 20 messages in a burst (paced to 1/s by its
  chat limiter) before the drip rate of one per 3 s applies. In the worst case a group gets
  about 40 messages in one rolling minute (the burst, then the drip). That is what PTB's own
  `AIORateLimiter` allows too; Telegram tolerates short bursts and answers anything more with a
  429 (RetryAfter), which the outbox honours;
- all chats together: `AsyncLimiter(overall_per_s, 1)`, a burst of 30, then 30 per second.

A send takes its chat's tokens first and the global token last, so a chat that is waiting for
its own pace never holds global capacity: other chats are only ever delayed by the global limit.
Sends to one chat are also serialized (first come, first served), so they leave in order.

Limiters are kept only while they matter: a chat's entry is dropped once nobody is using it and
its buckets have drained (about 1 s for a private chat, at most a minute for a group), which is
exactly when a fresh limiter would behave the same. Memory is therefore bounded by the chats
that sent in the last minute, which the global limit bounds in turn.

Use one instance per event loop (aiolimiter binds to the loop it first runs in).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter

_SWEEP_EVERY_S = 10.0
"""How often, at most, to look for drained chat limiters to drop (event-loop seconds)."""


@dataclass
class _Chat:
    pace: AsyncLimiter
    group: AsyncLimiter | None = None
    order: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0

    def drained(self) -> bool:
        """Whether every bucket is empty, i.e. the entry behaves like a fresh one."""
        return all(
            limiter.has_capacity(limiter.max_rate)
            for limiter in (self.pace, self.group)
            if limiter is not None
        )


class ChatRateLimiter:
    """Waits until a message may be sent to a chat without breaking the platform's limits.

    Usage::

        async with limiter.slot(chat_id, group=True):
            await bot.send_message(...)
    """

    def __init__(
        self,
        *,
        per_chat_per_s: float = 1.0,
        per_group_per_min: float = 20,
        overall_per_s: float = 30,
    ) -> None:
        if per_chat_per_s <= 0:
            raise ValueError(f"per_chat_per_s must be positive, got {per_chat_per_s}")
        if per_group_per_min < 1 or overall_per_s < 1:
            raise ValueError(
                "per_group_per_min and overall_per_s must be at least 1 (each bucket must hold "
                f"one message), got {per_group_per_min} and {overall_per_s}"
            )
        self._per_chat_period = 1 / per_chat_per_s
        self._per_group_per_min = per_group_per_min
        self._overall = AsyncLimiter(overall_per_s, 1)
        self._chats: dict[str, _Chat] = {}
        self._last_sweep: float | None = None

    @asynccontextmanager
    async def slot(self, chat_id: str | int, *, group: bool) -> AsyncIterator[None]:
        """Wait for the chat's, the group's (if `group`) and the global limit, then send.

        The body runs while the chat's slot is held: the next send to the same chat waits for
        it to finish. Tokens are spent when taken; a cancelled wait or a failed send does not
        give them back.
        """
        self._sweep()
        key = str(chat_id)
        chat = self._chats.get(key)
        if chat is None:
            chat = self._chats[key] = _Chat(pace=AsyncLimiter(1, self._per_chat_period))
        if group and chat.group is None:
            chat.group = AsyncLimiter(self._per_group_per_min, 60)
        chat.users += 1
        try:
            async with chat.order:
                await chat.pace.acquire()
                if group and chat.group is not None:
                    await chat.group.acquire()
                await self._overall.acquire()
                yield
        finally:
            chat.users -= 1

    def __len__(self) -> int:
        """Number of chats whose limiters are currently kept."""
        return len(self._chats)

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._last_sweep is not None and now - self._last_sweep < _SWEEP_EVERY_S:
            return
        self._last_sweep = now
        idle = [key for key, chat in self._chats.items() if chat.users == 0 and chat.drained()]
        for key in idle:
            del self._chats[key]
