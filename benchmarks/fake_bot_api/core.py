"""The base of :class:`~benchmarks.fake_bot_api.api.FakeBotApi`: state, lifecycle, webhook.

:class:`FakeBotApiCore` owns the state and the waiters, starts and stops the background work
(webhook pusher, autosave) and has the chat and message look-ups that the Bot API methods
(:mod:`.methods`), the update queue (:mod:`.updates`) and the control actions (:mod:`.control`)
share. It runs on one event loop, so it needs no locks.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.fake_bot_api.state import (
    OPT_IN_UPDATES,
    BotApiError,
    FakeBotApiConfig,
    FakeBotApiState,
    JSONDict,
)


@dataclass
class Reply:
    """What the HTTP layer sends back: ``body`` None drops the connection instead."""

    status: int
    body: JSONDict | None
    delay: float = 0.0

    @classmethod
    def ok(cls, result: Any) -> Reply:
        return cls(200, {"ok": True, "result": result})

    @classmethod
    def error(cls, err: BotApiError) -> Reply:
        return cls(err.code, err.envelope())


def message_key(chat_id: Any, message_id: Any) -> str:
    return f"{int(chat_id)}:{int(message_id)}"


def update_kind(update: JSONDict) -> str:
    return next(key for key in update if key != "update_id")


def without_reply(message: JSONDict) -> JSONDict:
    """Telegram nests replies one level deep only."""
    copied = copy.deepcopy(message)
    copied.pop("reply_to_message", None)
    return copied


class FakeBotApiCore:
    """State, lifecycle and shared look-ups; :class:`FakeBotApi` adds the behaviour."""

    def __init__(self, config: FakeBotApiConfig, state: FakeBotApiState | None = None) -> None:
        self.config = config
        self.state = (
            state if state is not None else FakeBotApiState(next_update_id=config.first_update_id)
        )
        self._update_waiters: set[asyncio.Future[str]] = set()
        self._call_waiters: set[asyncio.Future[str]] = set()
        self._active_poll: asyncio.Future[str] | None = None
        self._active_polls = 0
        self._shutdown: asyncio.Future[None] | None = None
        self._stop: asyncio.Event | None = None
        self._webhook_wakeup = asyncio.Event()
        self._webhook_task: asyncio.Task[None] | None = None
        self._autosave_task: asyncio.Task[None] | None = None
        self._dirty = False

    # ----------------------------------------------------------------- lifecycle

    async def start(self, stop: asyncio.Event) -> None:
        """Start background work on the running loop; ``stop`` is set by control/shutdown."""
        self._stop = stop
        self._shutdown = asyncio.get_running_loop().create_future()
        self._restart_webhook_pusher()
        if self.config.state_file is not None:
            self._autosave_task = asyncio.create_task(self._autosave())

    async def close(self) -> None:
        """Wake every waiting request, stop background work and save the state."""
        if self._shutdown is not None and not self._shutdown.done():
            self._shutdown.set_result(None)
        self._wake(self._update_waiters, "shutdown")
        self._wake(self._call_waiters, "shutdown")
        for task in (self._webhook_task, self._autosave_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self.save()

    def save(self) -> None:
        if self.config.state_file is not None:
            self.state.save(self.config.state_file)
            self._dirty = False

    async def _autosave(self) -> None:
        while True:
            await asyncio.sleep(self.config.autosave_interval)
            if self._dirty:
                self.save()

    async def wait(self, timeout: float, *futures: asyncio.Future[Any]) -> None:
        """Sleep up to ``timeout`` seconds, less if a future or the shutdown completes."""
        assert self._shutdown is not None, "call start() first"
        await asyncio.wait(
            {self._shutdown, *futures},
            timeout=max(timeout, 0.0),
            return_when=asyncio.FIRST_COMPLETED,
        )

    @staticmethod
    def _wake(waiters: Iterable[asyncio.Future[str]], reason: str) -> None:
        for waiter in list(waiters):
            if not waiter.done():
                waiter.set_result(reason)

    def _closing(self) -> bool:
        return self._shutdown is not None and self._shutdown.done()

    def _select_updates(self, limit: int) -> list[JSONDict]:
        allowed = self.state.allowed_updates
        kept = []
        for update in self.state.updates:
            kind = update_kind(update)
            if (kind in allowed) if allowed else (kind not in OPT_IN_UPDATES):
                kept.append(update)
        self.state.updates = kept
        return copy.deepcopy(kept[:limit])

    # ----------------------------------------------------------------- shared look-ups

    def _bot_user_json(self) -> JSONDict:
        return self.config.bot_user().to_json()

    def _find_chat(self, chat_id: Any) -> JSONDict | None:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            name = chat_id[1:].lower()
            found = (c for c in self.state.chats.values() if str(c.get("username")).lower() == name)
            return next(found, None)
        try:
            return self.state.chats.get(str(int(chat_id)))
        except (TypeError, ValueError):
            return None

    def _next_message_id(self, chat_id: int) -> int:
        key = str(chat_id)
        message_id = self.state.next_message_id.get(key, 1)
        self.state.next_message_id[key] = message_id + 1
        return message_id

    def _store_message(self, message: JSONDict) -> None:
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        key = str(chat_id)
        self.state.next_message_id[key] = max(
            self.state.next_message_id.get(key, 1), int(message_id) + 1
        )
        self.state.messages[message_key(chat_id, message_id)] = message

    # ----------------------------------------------------------------- webhook pushes

    def _restart_webhook_pusher(self) -> None:
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            self._webhook_task = None
        if self.state.webhook.get("url") and self._shutdown is not None:
            self._webhook_task = asyncio.create_task(self._push_updates(self.state.webhook))

    async def _push_updates(self, webhook: JSONDict) -> None:
        """Deliver pending updates in order, one at a time, like a webhook with one connection."""
        async with httpx.AsyncClient(timeout=self.config.webhook_timeout) as client:
            while not self._closing():
                batch = self._select_updates(1)
                if not batch:
                    self._webhook_wakeup.clear()
                    await self._webhook_wakeup.wait()
                    continue
                update_id = batch[0]["update_id"]
                await self._deliver(client, webhook, batch[0])
                self.state.updates = [u for u in self.state.updates if u["update_id"] != update_id]
                self._dirty = True

    async def _deliver(
        self, client: httpx.AsyncClient, webhook: JSONDict, update: JSONDict
    ) -> bool:
        body = json.dumps(update).encode()
        delay = self.config.webhook_retry_delay
        for attempt in range(1, self.config.webhook_max_attempts + 1):
            status, error, _ = await post_webhook(
                client, webhook["url"], body, webhook.get("secret_token"), "application/json"
            )
            delivery = {"update_id": update["update_id"], "attempt": attempt, "status": status}
            delivery.update(error=error, at=time.monotonic())
            self.state.webhook_deliveries.append(delivery)
            if error is None:
                return True
            webhook.update(last_error_date=int(time.time()), last_error_message=error)
            if attempt < self.config.webhook_max_attempts:
                await self.wait(delay)
                delay = min(delay * 2, 2.0)
        return False


async def post_webhook(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    secret: str | None,
    content_type: str | None,
) -> tuple[int, str | None, str]:
    """POST like Telegram's webhook sender: (status, error or None on 2xx, response text)."""
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}", ""
    if response.is_success:
        return response.status_code, None, response.text
    error = f"Wrong response from the webhook: {response.status_code} {response.reason_phrase}"
    return response.status_code, error, response.text
