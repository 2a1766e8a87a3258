"""The fake's behaviour in one class: :class:`FakeBotApi`, which the HTTP layer serves.

It is assembled from :class:`~.core.FakeBotApiCore` (state, lifecycle, webhook pusher),
:class:`~.methods.BotMethods`, :class:`~.updates.UpdateQueue` and
:class:`~.control.ControlActions`; this module adds the dispatch of a Bot API call: the method
table, fault rules and the record of every call.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

from benchmarks.fake_bot_api.control import ControlActions
from benchmarks.fake_bot_api.core import Reply
from benchmarks.fake_bot_api.state import (
    NOT_FOUND,
    BotApiError,
    FakeBotApiConfig,
    FakeBotApiState,
    FaultRule,
    JSONDict,
)


class FakeBotApi(ControlActions):
    """The fake's behaviour. Runs on one event loop, so it needs no locks.

    :meth:`handle` serves Bot API calls, :meth:`control` the test-facing actions. Call
    :meth:`start` on the serving loop before the first request and :meth:`close` at the end.
    """

    def __init__(self, config: FakeBotApiConfig, state: FakeBotApiState | None = None) -> None:
        super().__init__(config, state)
        bot_methods: dict[str, Callable[[JSONDict], Any]] = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "sendChatAction": self._send_chat_action,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "close": lambda _params: True,
            "logOut": lambda _params: True,
        }
        self._methods = {name.lower(): (name, fn) for name, fn in bot_methods.items()}

    async def handle(self, method: str, params: JSONDict, closed: asyncio.Future[None]) -> Reply:
        """Serve one Bot API call; ``closed`` completes if the client hangs up."""
        entry = self._methods.get(method.lower())
        if method.lower() == "getupdates":
            name = "getUpdates"
        elif entry is None:  # Recorded, so a test can see which method the bot missed.
            missed = self._new_record(method, params, time.monotonic())
            self._finish(missed, 404, "error", description=f"{NOT_FOUND}: not in the fake")
            return Reply(404, {"ok": False, "error_code": 404, "description": NOT_FOUND})
        else:
            name = entry[0]
        state = self.state
        state.method_calls[name] = state.method_calls.get(name, 0) + 1
        if name == "getUpdates":
            state.get_updates_calls += 1
        self._dirty = True
        received_at = time.monotonic()
        chat_id = params.get("chat_id")
        record = None if name == "getUpdates" else self._new_record(name, params, received_at)
        delay = self._take_latency(name, chat_id)
        if delay:
            await self.wait(delay, closed)
        rule = self._take_fault(name, chat_id)
        if rule is not None and rule.action == "error":
            err = rule.to_error(time.monotonic())
            self._finish(record, err.code, "error", description=err.description)
            return Reply.error(err)
        if rule is not None and rule.action == "drop" and not rule.after_processing:
            self._finish(record, 0, "dropped", description="connection dropped unanswered")
            return Reply(0, None)
        if name == "getUpdates":
            reply = await self._get_updates(params, received_at, closed)
        else:
            assert entry is not None and record is not None
            try:
                reply = Reply.ok(entry[1](params))
            except BotApiError as err:
                self._finish(record, err.code, "error", description=err.description)
                return Reply.error(err)
            assert reply.body is not None
            self._finish(record, 200, "ok", delivered=True, result=reply.body["result"])
        if rule is None or reply.status != 200:
            return reply
        if rule.action == "read_timeout":
            self._set_outcome(record, "read_timeout")
            return Reply(reply.status, reply.body, delay=rule.delay)
        self._set_outcome(record, "dropped")
        return Reply(0, None)

    def _take_latency(self, method: str, chat_id: Any) -> float:
        now = time.monotonic()
        delay = 0.0
        for rule in self._matching_faults(method, chat_id, now):
            if rule.action == "latency":
                delay += rule.delay
                self._consume(rule)
        return delay

    def _take_fault(self, method: str, chat_id: Any) -> FaultRule | None:
        for rule in self._matching_faults(method, chat_id, time.monotonic()):
            if rule.action != "latency":
                self._consume(rule)
                return rule
        return None

    def _matching_faults(self, method: str, chat_id: Any, now: float) -> list[FaultRule]:
        faults = self.state.faults
        faults[:] = [r for r in faults if r.until is None or r.until > now]
        return [rule for rule in faults if rule.matches(method, chat_id, now)]

    def _consume(self, rule: FaultRule) -> None:
        if rule.count is not None:
            rule.count -= 1
            if rule.count <= 0:
                self.state.faults.remove(rule)

    def _new_record(self, method: str, params: JSONDict, received_at: float) -> JSONDict:
        record: JSONDict = {
            "seq": len(self.state.calls) + 1,
            "method": method,
            "chat_id": params.get("chat_id"),
            "message_id": params.get("message_id"),
            "text": params.get("text"),
            "params": dict(params),
            "received_at": received_at,
            "finished_at": None,
            "date": int(time.time()),
            "status": None,
            "outcome": "pending",
            "delivered": False,
            "description": None,
            "result": None,
        }
        self.state.calls.append(record)
        return record

    def _finish(
        self,
        record: JSONDict | None,
        status: int,
        outcome: str,
        *,
        delivered: bool = False,
        description: str | None = None,
        result: Any = None,
    ) -> None:
        if record is None:
            return
        record.update(status=status, outcome=outcome, delivered=delivered)
        record.update(description=description, finished_at=time.monotonic())
        if result is not None:
            record["result"] = copy.deepcopy(result)
            if isinstance(result, dict) and "message_id" in result:
                record["message_id"] = result["message_id"]
        self._wake(self._call_waiters, "call")

    def _set_outcome(self, record: JSONDict | None, outcome: str) -> None:
        if record is not None:
            record["outcome"] = outcome
