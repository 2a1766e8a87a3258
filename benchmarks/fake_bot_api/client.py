"""The test side: :class:`FakeBotApiClient` drives a running fake over its control API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import httpx

from benchmarks.fake_bot_api.factories import FakeChat, FakeUser
from benchmarks.fake_bot_api.results import Counters, RecordedCall, WebhookPush
from benchmarks.fake_bot_api.state import BLOCKED, ChatId, FaultAction, FaultRule, JSONDict


class FakeBotApiControlError(RuntimeError):
    """Raised by :class:`FakeBotApiClient` when the fake refused a control request."""


class FakeBotApiClient:
    """Drives a running fake over its control API; works the same for thread and subprocess.

    Blocking calls: from async test code wrap them in ``asyncio.to_thread`` if the bot runs on
    the same loop, or use :meth:`wait_for_calls_async`.
    """

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._config: JSONDict | None = None

    def __enter__(self) -> FakeBotApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _control(
        self, action: str, body: JSONDict | None = None, *, timeout: float | None = None
    ) -> Any:
        response = self._http.post(
            f"/_control/{action}",
            json=body or {},
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
        data = response.json()
        if not data.get("ok"):
            raise FakeBotApiControlError(f"{action}: {data.get('description')}")
        return data["result"]

    # -- identity
    @property
    def bot_base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)`` / ``Bot(..., base_url=...)``."""
        return f"{self.url}/bot"

    def config(self) -> JSONDict:
        if self._config is None:
            self._config = self._control("config")
        return self._config

    @property
    def token(self) -> str:
        return str(self.config()["token"])

    @property
    def bot_user(self) -> FakeUser:
        bot = self.config()["bot"]
        return FakeUser(bot["id"], bot["first_name"], bot.get("username"), is_bot=True)

    # -- updates in
    def add_chat(self, chat: FakeChat) -> JSONDict:
        return dict(self._control("add_chat", {"chat": chat.to_json()}))

    def inject(self, update: JSONDict) -> JSONDict:
        """Queue one update built with :mod:`.factories`; returns it as stored."""
        return dict(self.inject_many([update])[0])

    def inject_many(self, updates: Iterable[JSONDict]) -> list[JSONDict]:
        return list(self._control("inject", {"updates": list(updates)}))

    def pending_updates(self) -> list[JSONDict]:
        return list(self._control("pending_updates"))

    # -- calls out
    def calls(
        self,
        method: str | None = None,
        chat_id: ChatId | None = None,
        *,
        delivered_only: bool = False,
        since_seq: int = 0,
    ) -> list[RecordedCall]:
        body = {"method": method, "chat_id": chat_id, "delivered_only": delivered_only}
        body["since_seq"] = since_seq
        return [RecordedCall.from_json(c) for c in self._control("calls", body)]

    def sent_messages(self, chat_id: ChatId | None = None) -> list[RecordedCall]:
        """Delivered sendMessage calls, in arrival order."""
        return self.calls("sendMessage", chat_id, delivered_only=True)

    def wait_for_calls(
        self,
        count: int,
        method: str | None = "sendMessage",
        chat_id: ChatId | None = None,
        *,
        delivered_only: bool = True,
        timeout: float = 5.0,
    ) -> list[RecordedCall]:
        """Block until at least ``count`` matching calls exist; all matches, or an error."""
        body = {"count": count, "method": method, "chat_id": chat_id, "timeout": timeout}
        body["delivered_only"] = delivered_only
        calls = self._control("wait_calls", body, timeout=timeout + 10)
        return [RecordedCall.from_json(c) for c in calls]

    async def wait_for_calls_async(
        self,
        count: int,
        method: str | None = "sendMessage",
        chat_id: ChatId | None = None,
        *,
        delivered_only: bool = True,
        timeout: float = 5.0,
    ) -> list[RecordedCall]:
        return await asyncio.to_thread(
            self.wait_for_calls,
            count,
            method,
            chat_id,
            delivered_only=delivered_only,
            timeout=timeout,
        )

    def messages(self, chat_id: int) -> list[JSONDict]:
        """The chat as it stands now (after edits and deletions), by message_id."""
        return list(self._control("messages", {"chat_id": chat_id}))

    def counters(self) -> Counters:
        return Counters(**self._control("counters"))

    def get_updates_log(self) -> list[JSONDict]:
        """The last 1000 getUpdates calls: offset, limit, timeout, received_at, returned ids."""
        return list(self._control("get_updates_log"))

    # -- faults
    def add_fault(
        self,
        action: FaultAction,
        *,
        method: str | None = "sendMessage",
        chat_id: ChatId | None = None,
        count: int | None = 1,
        duration: float | None = None,
        error_code: int = 400,
        description: str = FaultRule.description,
        parameters: JSONDict | None = None,
        delay: float = 0.0,
        after_processing: bool = False,
    ) -> int:
        """Add a :class:`FaultRule`; ``duration`` seconds from now bounds it. Returns its id."""
        until = None if duration is None else time.monotonic() + duration
        rule: JSONDict = {"action": action, "method": method, "chat_id": chat_id, "count": count}
        rule.update(until=until, error_code=error_code, description=description)
        rule.update(parameters=parameters, delay=delay, after_processing=after_processing)
        return int(self._control("add_fault", {"rule": rule}))

    def rate_limit(
        self,
        chat_id: ChatId | None,
        *,
        retry_after: int | None = 5,
        count: int | None = 1,
        duration: float | None = None,
        method: str | None = "sendMessage",
    ) -> int:
        """Answer 429 "retry after N"; ``retry_after`` None reports the seconds left."""
        parameters = None if retry_after is None else {"retry_after": retry_after}
        return self.add_fault(
            "error",
            method=method,
            chat_id=chat_id,
            count=count,
            duration=duration,
            error_code=429,
            parameters=parameters,
        )

    def block(self, chat_id: ChatId, *, description: str = BLOCKED) -> int:
        """Every call about ``chat_id`` answers 403 until :meth:`unblock`."""
        return self.add_fault(
            "error",
            method=None,
            chat_id=chat_id,
            count=None,
            error_code=403,
            description=description,
        )

    def unblock(self, chat_id: ChatId) -> None:
        for rule in self.faults():
            if rule["error_code"] == 403 and str(rule["chat_id"]) == str(chat_id):
                self.remove_fault(rule["id"])

    def fail(
        self,
        method: str | None,
        error_code: int,
        description: str,
        *,
        chat_id: ChatId | None = None,
        count: int | None = 1,
        parameters: JSONDict | None = None,
    ) -> int:
        """Answer any error, e.g. ``fail("editMessageText", 400, "Bad Request: ...")``."""
        return self.add_fault(
            "error",
            method=method,
            chat_id=chat_id,
            count=count,
            error_code=error_code,
            description=description,
            parameters=parameters,
        )

    def latency(
        self,
        method: str | None,
        seconds: float,
        *,
        chat_id: ChatId | None = None,
        count: int | None = None,
    ) -> int:
        return self.add_fault("latency", method=method, chat_id=chat_id, count=count, delay=seconds)

    def read_timeout(
        self,
        *,
        method: str | None = "sendMessage",
        chat_id: ChatId | None = None,
        delay: float = 30.0,
        count: int | None = 1,
    ) -> int:
        """Handle the call (the message is delivered) but hold the answer ``delay`` seconds."""
        return self.add_fault(
            "read_timeout", method=method, chat_id=chat_id, count=count, delay=delay
        )

    def drop_connection(
        self,
        *,
        method: str | None = "sendMessage",
        chat_id: ChatId | None = None,
        count: int | None = 1,
        after_processing: bool = False,
    ) -> int:
        """Close the connection unanswered; the call takes effect only if ``after_processing``."""
        return self.add_fault(
            "drop", method=method, chat_id=chat_id, count=count, after_processing=after_processing
        )

    def faults(self) -> list[JSONDict]:
        return list(self._control("faults"))

    def remove_fault(self, rule_id: int) -> bool:
        return bool(self._control("remove_fault", {"id": rule_id}))

    def clear_faults(self) -> None:
        self._control("clear_faults")

    # -- webhook
    def webhook(self) -> JSONDict:
        """The webhook the bot set (url, secret_token, ...) and getWebhookInfo's fields."""
        return dict(self._control("webhook"))

    def webhook_deliveries(self) -> list[JSONDict]:
        """Every push attempt: update_id, attempt, status (0: unreachable), error, at."""
        return list(self._control("webhook_deliveries"))

    def push_raw(
        self,
        body: JSONDict | str,
        *,
        secret: str | None,
        url: str | None = None,
        content_type: str | None = "application/json",
    ) -> WebhookPush:
        """POST once to the webhook (or ``url``) with any secret and content type."""
        request = {"body": body, "secret": secret, "url": url, "content_type": content_type}
        return WebhookPush(**self._control("push_raw", request))

    # -- lifecycle
    def reset(self) -> None:
        """Forget everything (updates, chats, calls, faults, webhook); keeps the config."""
        self._control("reset")

    def save_state(self) -> None:
        self._control("save")

    def shutdown(self) -> None:
        self._control("shutdown")


def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 5.0, interval: float = 0.02, what: str = ""
) -> None:
    """Poll ``predicate`` until it holds; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)
