"""The control API the tests drive the fake with: ``POST /_control/<action>``.

Each action is a ``_control_<action>`` method; :class:`~.client.FakeBotApiClient` wraps them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from dataclasses import asdict
from typing import Any

import httpx

from benchmarks.fake_bot_api.core import post_webhook
from benchmarks.fake_bot_api.methods import BotMethods
from benchmarks.fake_bot_api.state import ControlError, FakeBotApiState, FaultRule, JSONDict
from benchmarks.fake_bot_api.updates import UpdateQueue


class ControlActions(BotMethods, UpdateQueue):
    """The test-facing actions: inspect calls and state, add faults, push to the webhook."""

    async def control(self, action: str, body: JSONDict) -> Any:
        """Run ``/_control/<action>``; each action is a ``_control_<action>`` method."""
        handler = getattr(self, f"_control_{action}", None)
        if not re.fullmatch(r"[a-z_]+", action) or handler is None:
            raise ControlError(f"unknown control action {action!r}; see FakeBotApiClient")
        result = handler(body)
        if asyncio.iscoroutine(result):
            result = await result
        self._dirty = True
        return result

    def _control_config(self, _body: JSONDict) -> JSONDict:
        state_file = self.config.state_file
        return {
            "token": self.config.token,
            "bot": self._bot_user_json(),
            "state_file": None if state_file is None else str(state_file),
        }

    def _control_reset(self, _body: JSONDict) -> bool:
        self.state = FakeBotApiState(next_update_id=self.config.first_update_id)
        self._restart_webhook_pusher()
        return True

    def _control_add_chat(self, body: JSONDict) -> JSONDict:
        return self.add_chat(body.get("chat") or {})

    def _control_inject(self, body: JSONDict) -> list[JSONDict]:
        return [self.inject(update) for update in body.get("updates", [])]

    def _control_pending_updates(self, _body: JSONDict) -> list[JSONDict]:
        return copy.deepcopy(self.state.updates)

    def _matching_calls(self, body: JSONDict) -> list[JSONDict]:
        method, chat_id = body.get("method"), body.get("chat_id")
        since = int(body.get("since_seq") or 0)
        return [
            call
            for call in self.state.calls
            if call["seq"] > since
            and (method is None or call["method"].lower() == str(method).lower())
            and (chat_id is None or str(call["chat_id"]) == str(chat_id))
            and (call["delivered"] or not body.get("delivered_only"))
        ]

    def _control_calls(self, body: JSONDict) -> list[JSONDict]:
        return copy.deepcopy(self._matching_calls(body))

    async def _control_wait_calls(self, body: JSONDict) -> list[JSONDict]:
        count = int(body.get("count", 1))
        deadline = time.monotonic() + float(body.get("timeout", 5.0))
        while True:
            found = self._matching_calls(body)
            if len(found) >= count:
                return copy.deepcopy(found)
            if time.monotonic() >= deadline or self._closing():
                seen = [(c["method"], c["chat_id"], c["outcome"]) for c in self.state.calls[-10:]]
                raise ControlError(
                    f"timed out waiting for {count} calls matching {body}; found {len(found)}. "
                    f"Last calls (method, chat_id, outcome): {seen}"
                )
            waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._call_waiters.add(waiter)
            try:
                await self.wait(deadline - time.monotonic(), waiter)
            finally:
                self._call_waiters.discard(waiter)

    def _control_messages(self, body: JSONDict) -> list[JSONDict]:
        prefix = f"{int(body['chat_id'])}:"
        found = [m for key, m in self.state.messages.items() if key.startswith(prefix)]
        return copy.deepcopy(sorted(found, key=lambda m: int(m["message_id"])))

    def _control_add_fault(self, body: JSONDict) -> int:
        rule = FaultRule(id=self.state.next_fault_id, **body["rule"])
        if rule.action not in ("error", "latency", "read_timeout", "drop"):
            raise ControlError(f"unknown fault action {rule.action!r}")
        self.state.next_fault_id += 1
        self.state.faults.append(rule)
        return rule.id

    def _control_faults(self, _body: JSONDict) -> list[JSONDict]:
        return [asdict(rule) for rule in self.state.faults]

    def _control_remove_fault(self, body: JSONDict) -> bool:
        before = len(self.state.faults)
        self.state.faults = [rule for rule in self.state.faults if rule.id != body["id"]]
        return len(self.state.faults) < before

    def _control_clear_faults(self, _body: JSONDict) -> bool:
        self.state.faults = []
        return True

    def _control_counters(self, _body: JSONDict) -> JSONDict:
        state = self.state
        return {
            "get_updates_calls": state.get_updates_calls,
            "last_confirmed_offset": state.last_confirmed_offset,
            "next_update_id": state.next_update_id,
            "pending_updates": len(state.updates),
            "injected_updates": state.injected_updates,
            "active_long_polls": self._active_polls,
            "calls": len(state.calls),
            "method_calls": dict(state.method_calls),
            "webhook_url": state.webhook.get("url", ""),
        }

    def _control_get_updates_log(self, _body: JSONDict) -> list[JSONDict]:
        return copy.deepcopy(self.state.get_updates_log)

    def _control_webhook(self, body: JSONDict) -> JSONDict:
        return {**copy.deepcopy(self.state.webhook), **self._get_webhook_info(body)}

    def _control_webhook_deliveries(self, _body: JSONDict) -> list[JSONDict]:
        return copy.deepcopy(self.state.webhook_deliveries)

    async def _control_push_raw(self, body: JSONDict) -> JSONDict:
        url = body.get("url") or self.state.webhook.get("url")
        if not url:
            raise ControlError("no webhook is set: pass 'url' or let the bot call setWebhook")
        payload = body.get("body")
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        async with httpx.AsyncClient(timeout=self.config.webhook_timeout) as client:
            status, error, text = await post_webhook(
                client, url, data, body.get("secret"), body.get("content_type")
            )
        return {"status": status, "error": error, "body": text}

    def _control_save(self, _body: JSONDict) -> bool:
        self.save()
        return True

    def _control_shutdown(self, _body: JSONDict) -> bool:
        stop = self._stop
        if stop is not None:  # Let this answer go out before the server stops.
            asyncio.get_running_loop().call_later(0.05, stop.set)
        return True
