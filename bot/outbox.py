"""Idempotent sending: one asyncio worker per conversation drains its outbox rows in order.

A reply is written to the outbox in the same transaction as the decision to send it, then a
worker claims it (pending -> sending), hands it to the channel, and records the result
(sent / failed / unknown, or back to pending with a delay). Workers wake when a row is
enqueued (`notify`); the scheduled sweep only catches rows enqueued by another process (the CLI
approving a draft) or left over after a restart. Different chats send concurrently; within a
chat the oldest row goes first and later rows wait behind a back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bot.channels.base import Channel, SendError
from bot.domain import OutboxStatus, Outgoing, utcnow
from bot.storage import outbox_store
from bot.storage.db import Database

log = logging.getLogger(__name__)

WORKER_ERROR_PAUSE_S = 5.0
CLOSE_GRACE_S = 10.0
NOT_READY_WAIT_S = 1.0  # how often a disconnected account's chat looks again
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay_s: float = 2.0
    max_delay_s: float = 300.0

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.max_delay_s, self.base_delay_s * 2 ** (attempts - 1)))


class Outbox:
    """Delivers outbox rows through the channel of each row's account."""

    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        retry: RetryPolicy | None = None,
        review_chats: Mapping[str, str] | None = None,
    ) -> None:
        """`channels` maps each account this process serves (by name) to its channel;
        `review_chats` maps an account to its moderators' chat, which is told about every
        reply whose delivery is in doubt."""
        self._db = db
        self._channels = dict(channels)
        self._retry = retry or RetryPolicy()
        self._review_chats = dict(review_chats or {})
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._wakeups: dict[int, asyncio.Event] = {}
        self._closing = False

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(self._channels)

    def recover(self) -> list[int]:
        """Call once at start, before any worker runs: this process's accounts' in-flight
        rows become `unknown`; other accounts' rows are never touched. (One process per
        account: a second process serving the same account would mark the first one's.)"""
        with self._db.session() as s:
            ids = outbox_store.recover_in_flight(s, self.accounts)
            for outbox_id in ids:
                outbox_store.report_in_doubt(s, outbox_id, self._review_chats)
        if ids:
            log.warning(
                "%d replies were being sent when the service last stopped and may or may not "
                "have been delivered; they are marked unknown, see `autoreply queue list "
                "--unknown` (outbox ids %s)",
                len(ids),
                ", ".join(map(str, ids[:20])),
            )
        return ids

    def notify(self, conversation_id: int) -> None:
        """Wake (or start) the worker of one conversation. Call from the event loop."""
        if self._closing:
            return
        self._wakeups.setdefault(conversation_id, asyncio.Event()).set()
        task = self._workers.get(conversation_id)
        if task is None or task.done():
            task = asyncio.create_task(
                self._worker(conversation_id), name=f"outbox-chat-{conversation_id}"
            )
            self._workers[conversation_id] = task
            task.add_done_callback(lambda done: self._forget(conversation_id, done))

    def _forget(self, conversation_id: int, task: asyncio.Task[None]) -> None:
        if self._workers.get(conversation_id) is task:
            del self._workers[conversation_id]

    async def sweep(self) -> int:
        """Wake workers for every conversation with pending rows (scheduled job)."""
        ids = await asyncio.to_thread(self._pending_conversations)
        for conversation_id in ids:
            self.notify(conversation_id)
        return len(ids)

    def _pending_conversations(self) -> list[int]:
        with self._db.session() as s:
            return outbox_store.conversations_with_pending(s, self.accounts)

    async def idle(self) -> None:
        """Wait until every worker has run out of work (tests, console shutdown)."""
        while True:
            tasks = [t for t in self._workers.values() if not t.done()]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Stop sending. A worker in the middle of a send finishes it and records the result
        (cancelling it there would leave a row in `sending`, reported as in doubt on the next
        start); workers still busy after `grace_s` are cancelled."""
        self._closing = True
        for wakeup in self._wakeups.values():
            wakeup.set()
        tasks = [t for t in self._workers.values() if not t.done()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()

    async def _worker(self, conversation_id: int) -> None:
        wakeup = self._wakeups.setdefault(conversation_id, asyncio.Event())
        while not self._closing:
            wakeup.clear()
            try:
                claimed = await asyncio.to_thread(self._claim, conversation_id)
                if isinstance(claimed, outbox_store.OutboxJob):
                    await self._deliver(claimed)
                    continue
            except Exception:  # e.g. the database is briefly unreachable: log, wait, go on
                log.exception("outbox worker for conversation %d failed; retrying", conversation_id)
                claimed = utcnow() + timedelta(seconds=WORKER_ERROR_PAUSE_S)
            if claimed is None and not wakeup.is_set():
                # Nothing pending. No await between the check and the exit, so a notify()
                # cannot slip in unseen: it would find this task done and start a new one.
                del self._wakeups[conversation_id]
                return
            timeout = _seconds_until(claimed) if isinstance(claimed, datetime) else 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=timeout)

    def _claim(self, conversation_id: int) -> outbox_store.OutboxJob | datetime | None:
        with self._db.session() as s:
            return outbox_store.claim_next(s, conversation_id)

    async def _deliver(self, job: outbox_store.OutboxJob) -> None:
        channel = self._channels.get(job.account)
        if channel is None:  # another process serves it; leave the row for that one
            error = f"account {job.account!r} is not served by this process"
            await self._record(self._retry_later, job, error)
            return
        if not channel.ready:
            # Down or still connecting: nothing was sent, so wait without using up a try (a
            # row left `sending` here would wrongly be reported in doubt after a crash).
            waiting = SendError(
                f"account {job.account!r} is not connected", retry_after=NOT_READY_WAIT_S
            )
            await self._record(self._after_error, job, waiting)
            return
        outgoing = Outgoing(
            platform=job.platform,
            account=job.account,
            chat_id=job.chat_id,
            text=job.text,
            reply_to_message_id=job.reply_to_platform_id,
            outbox_id=job.id,
            kind=job.kind,
            draft_id=job.draft_id,
            own_reply=job.own_reply,
        )
        try:
            platform_id = await channel.send(outgoing)
        except SendError as exc:
            notice_to = await self._record(self._after_error, job, exc)
            if notice_to is not None:
                self.notify(notice_to)
            return
        except Exception as exc:  # a channel bug: whether it went out is unknown
            log.exception("outbox %d: the %s channel failed unexpectedly", job.id, job.platform)
            await self._record(self._after_error, job, SendError(repr(exc), in_doubt=True))
            return
        await self._record(self._finish_sent, job, platform_id)

    async def _record(self, write: Callable[..., R], *args: Any) -> R | None:
        """Write a send's outcome, retrying while the database is unreachable.

        The row stays claimed (`sending`) until this succeeds, and this chat's worker sends
        nothing else meanwhile, so order holds. If the process stops first, the row is
        reported as in doubt on the next start.
        """
        delay = 1.0
        while True:
            try:
                return await asyncio.to_thread(write, *args)
            except Exception:  # the database: log, wait, write again
                if self._closing:
                    log.exception("outbox: could not record a send before stopping")
                    return None
                log.exception("outbox: recording a send failed; retrying in %.0f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _finish_sent(self, job: outbox_store.OutboxJob, platform_id: str) -> None:
        with self._db.session() as s:
            outbox_store.mark_sent(s, job, platform_id)

    def _retry_later(self, job: outbox_store.OutboxJob, error: str) -> None:
        with self._db.session() as s:
            outbox_store.mark_retry(s, job.id, error, self._retry.delay(job.attempts))

    def _after_error(self, job: outbox_store.OutboxJob, exc: SendError) -> int | None:
        """Record a failed send; returns the moderators' chat to wake for an in-doubt notice."""
        error = str(exc)
        notice_to = None
        with self._db.session() as s:
            if exc.in_doubt:
                log.warning("outbox %d: delivery in doubt (%s); marked unknown", job.id, error)
                outbox_store.mark_failed(s, job, error, OutboxStatus.UNKNOWN)
                notice_to = outbox_store.report_in_doubt(s, job.id, self._review_chats)
            elif exc.permanent:
                log.warning("outbox %d: failed for good (%s)", job.id, error)
                outbox_store.mark_failed(s, job, error, OutboxStatus.FAILED)
                if exc.unreachable_user:
                    outbox_store.mark_conversation_unreachable(s, job.conversation_id)
            elif exc.retry_after is not None:
                # Rate limited: this chat alone waits; the attempt does not count.
                outbox_store.mark_retry(s, job.id, error, timedelta(seconds=exc.retry_after))
                outbox_store.refund_attempt(s, job.id)
            elif job.attempts >= self._retry.max_attempts:
                log.warning(
                    "outbox %d: giving up after %d attempts (%s)", job.id, job.attempts, error
                )
                outbox_store.mark_failed(s, job, error, OutboxStatus.FAILED)
            else:
                outbox_store.mark_retry(s, job.id, error, self._retry.delay(job.attempts))
        return notice_to


def _seconds_until(when: datetime) -> float:
    return max(0.0, (when - utcnow()).total_seconds())
