"""Gather concurrent draft requests into shared `generate` calls (micro-batching).

A burst of mentions after a post arrives as many concurrent `adraft` calls, from any chats and
accounts. Decoding one token for 16 rows costs little more than for one on the same hardware
(the weights are read once per step), so the batcher holds a request until no other has
arrived for `window_s` (at most `MAX_WAIT_WINDOWS` windows), takes every request that arrived
meanwhile (up to `max_batch`), and hands them to `ReplyGenerator.draft_settled` in one go.
While that batch generates, new requests queue up and form the next batch at once: the window
is only waited when the model is idle, so a lone message is never delayed by more than the
window.

Adapters that are not in memory are loaded before their request joins the queue, in a thread
beside generation (`ModelHost.using`), so a new account's first message never stalls the
others. Each request gets its own result: one that fails (a bad adapter, a prompt that cannot
be built, a row the model chokes on) fails only its own caller.

Written by hand because none of our libraries batch dynamically for `generate` in-process
(serving stacks like TGI/vLLM do it out of process, with their own model formats).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from bot.domain import Draft, DraftRequest
from bot.errors import GenerationError
from bot.nlp.generate import ReplyGenerator

log = logging.getLogger(__name__)

# A batch being gathered closes `window_s` after its latest arrival, and never later than this
# many windows after its first: a lone message waits one window, a burst a little longer.
MAX_WAIT_WINDOWS = 10


@dataclass(slots=True)
class _Waiting:
    request: DraftRequest
    future: asyncio.Future[Draft]
    since: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class BatchStats:
    """Counters for logs and benchmarks."""

    batches: int = 0
    requests: int = 0
    largest: int = 0

    @property
    def mean_size(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


class MicroBatcher:
    """The pipeline's drafter: `await batcher.adraft(request)`; start it inside the event loop
    (it starts itself on first use) and `await batcher.aclose()` on shutdown."""

    def __init__(
        self,
        generator: ReplyGenerator,
        *,
        window_s: float = 0.02,
        max_batch: int = 16,
    ) -> None:
        if window_s < 0 or max_batch < 1:
            raise ValueError("window_s must be >= 0 and max_batch >= 1")
        self.generator = generator
        self.window_s = window_s
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._taken: list[_Waiting] = []  # out of the queue, not answered yet
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    async def adraft(self, request: DraftRequest) -> Draft:
        if self._closed:
            raise GenerationError("the drafter is shut down; restart the service")
        host = self.generator.host
        # Pin the adapter so the cache cannot unload it while the request waits; loading it
        # (if needed) runs in a worker thread while the model keeps generating for others.
        pins = [request.adapter]
        try:
            for name in host.pin(pins):
                await asyncio.to_thread(host.ensure_loaded, name)
            future: asyncio.Future[Draft] = asyncio.get_running_loop().create_future()
            self._ensure_running().put_nowait(_Waiting(request, future))
            return await future
        finally:
            host.unpin(pins)

    async def adraft_many(self, requests: Sequence[DraftRequest]) -> list[Draft]:
        return list(await asyncio.gather(*(self.adraft(request) for request in requests)))

    async def aclose(self) -> None:
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            with suppress(asyncio.CancelledError):
                await self._runner
        waiting = list(self._taken)
        if self._queue is not None:
            while not self._queue.empty():
                waiting.append(self._queue.get_nowait())
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(
                    GenerationError(
                        "the drafter shut down before this draft was made; the message stays "
                        "unhandled and is drafted again on the next start"
                    )
                )

    # --- the loop ------------------------------------------------------------------------------

    def _ensure_running(self) -> asyncio.Queue[_Waiting]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(self._queue), name="micro-batcher")
        return self._queue

    async def _run(self, queue: asyncio.Queue[_Waiting]) -> None:
        while True:
            self._taken = []
            batch = await self._collect(queue)
            live = [w for w in batch if not w.future.done()]  # callers may have given up
            if not live:
                continue
            self.stats.batches += 1
            self.stats.requests += len(live)
            self.stats.largest = max(self.stats.largest, len(live))
            try:
                results = await self.generator.adraft_settled([w.request for w in live])
            except Exception as exc:
                log.exception("a draft batch failed as a whole")
                results = [exc] * len(live)
            for waiting, result in zip(live, results, strict=True):
                if waiting.future.done():
                    continue
                if isinstance(result, BaseException):
                    waiting.future.set_exception(result)
                else:
                    waiting.future.set_result(result)

    async def _collect(self, queue: asyncio.Queue[_Waiting]) -> list[_Waiting]:
        """The next batch: the oldest waiting request plus whatever arrives before its
        window closes, at most `max_batch`."""
        batch = self._taken
        batch.append(await queue.get())
        # The window restarts with each arrival (a burst trickles in as the pipeline stores
        # and analyses each message), up to MAX_WAIT_WINDOWS windows after the first request.
        cap = batch[0].since + self.window_s * MAX_WAIT_WINDOWS
        while len(batch) < self.max_batch:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = min(batch[-1].since + self.window_s, cap) - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch
