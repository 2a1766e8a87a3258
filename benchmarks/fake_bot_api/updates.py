"""The update queue: updates the tests inject, and getUpdates handing them to the bot.

getUpdates follows the Bot API: an update is confirmed by any later call whose offset is
above its id, long polls wait for the next update, and 409 answers a call while a webhook is
set or when a newer getUpdates call takes over.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from benchmarks.fake_bot_api.core import FakeBotApiCore, Reply, message_key, without_reply
from benchmarks.fake_bot_api.state import (
    MESSAGE_KINDS,
    POLL_CONFLICT,
    WEBHOOK_CONFLICT,
    BotApiError,
    ControlError,
    JSONDict,
)


class UpdateQueue(FakeBotApiCore):
    """Injecting updates (:meth:`inject`, :meth:`add_chat`) and serving getUpdates."""

    async def _get_updates(
        self, params: JSONDict, received_at: float, closed: asyncio.Future[None]
    ) -> Reply:
        state = self.state
        if state.webhook.get("url"):
            return Reply.error(BotApiError(409, WEBHOOK_CONFLICT))
        try:
            offset = int(params.get("offset") or 0)
            limit = min(max(int(params.get("limit") or 100), 1), 100)
            timeout = float(params.get("timeout") or 0)
        except (TypeError, ValueError):
            return Reply.error(BotApiError.bad_request("invalid getUpdates parameters"))
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            state.allowed_updates = [str(kind) for kind in allowed] or None
        self._confirm(offset)
        entry: JSONDict = {"offset": offset, "limit": limit, "timeout": timeout}
        entry["received_at"] = received_at
        state.get_updates_log = [*state.get_updates_log[-999:], entry]
        if self._active_poll is not None:
            self._wake([self._active_poll], "terminated")
        deadline = received_at + timeout
        self._active_polls += 1
        try:
            while True:
                batch = self._select_updates(limit)
                if batch or time.monotonic() >= deadline or closed.done() or self._closing():
                    break
                waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
                self._update_waiters.add(waiter)
                self._active_poll = waiter
                try:
                    await self.wait(deadline - time.monotonic(), waiter, closed)
                finally:
                    self._update_waiters.discard(waiter)
                if waiter.done() and waiter.result() == "terminated":
                    return Reply.error(BotApiError(409, POLL_CONFLICT))
        finally:
            self._active_polls -= 1
        entry["returned"] = [update["update_id"] for update in batch]
        return Reply.ok(batch)

    def _confirm(self, offset: int) -> None:
        state = self.state
        if offset > 0:
            state.updates = [u for u in state.updates if u["update_id"] >= offset]
            state.last_confirmed_offset = max(state.last_confirmed_offset, offset)
        elif offset < 0:
            state.updates = state.updates[offset:]

    # ----------------------------------------------------------------- injected updates

    def add_chat(self, chat: JSONDict) -> JSONDict:
        """Make a chat known (the moderators' chat, say) so the bot may send to it."""
        if "id" not in chat or "type" not in chat:
            raise ControlError("a chat needs 'id' and 'type'; build it with FakeChat(...)")
        key = str(int(chat["id"]))
        self.state.chats[key] = {**self.state.chats.get(key, {}), **chat}
        return copy.deepcopy(self.state.chats[key])

    def _known_chat(self, chat: Any) -> JSONDict:
        if not isinstance(chat, dict) or "id" not in chat:
            raise ControlError("this update needs a 'chat' object with an 'id'")
        if "type" in chat:
            return self.add_chat(chat)
        known = self._find_chat(chat["id"])
        if known is None:
            raise ControlError(f"chat {chat['id']} is unknown: give its 'type' or add_chat() it")
        return copy.deepcopy(known)

    def _remember_user(self, user: Any) -> None:
        if isinstance(user, dict) and "id" in user:
            self.state.users[str(user["id"])] = copy.deepcopy(user)

    def inject(self, payload: JSONDict) -> JSONDict:
        """Queue one update (JSON without update_id, see factories); returns it as stored."""
        update = copy.deepcopy(payload)
        update_id = update.pop("update_id", None)
        if len(update) != 1:
            raise ControlError(
                f"an update carries exactly one kind of object; got {sorted(update)}"
            )
        ((kind, body),) = update.items()
        if not isinstance(body, dict):
            raise ControlError(f"the {kind!r} of an update must be an object")
        if kind in MESSAGE_KINDS:
            self._prepare_message(body, edited=kind.startswith("edited"))
        elif kind == "callback_query":
            self._prepare_callback_query(body)
        elif kind in ("my_chat_member", "chat_member"):
            self._prepare_member_update(body)
        state = self.state
        if update_id is None:
            update_id = state.next_update_id
        elif int(update_id) < state.next_update_id:
            raise ControlError(f"update_id {update_id} must be at least {state.next_update_id}")
        state.next_update_id = int(update_id) + 1
        stored = {"update_id": int(update_id), kind: body}
        state.updates.append(stored)
        state.injected_updates += 1
        self._wake(self._update_waiters, "update")
        self._webhook_wakeup.set()
        self._dirty = True
        return copy.deepcopy(stored)

    def _prepare_message(self, message: JSONDict, *, edited: bool) -> None:
        chat = self._known_chat(message.get("chat"))
        message["chat"] = chat
        self._remember_user(message.get("from"))
        message.setdefault("date", int(time.time()))
        if "message_id" not in message:
            if edited:
                raise ControlError("an edited message needs the message_id of the original")
            message["message_id"] = self._next_message_id(chat["id"])
        reply = message.get("reply_to_message")
        if isinstance(reply, dict) and "date" not in reply:
            stored = self.state.messages.get(message_key(chat["id"], reply.get("message_id", 0)))
            if stored is None:
                raise ControlError(
                    f"reply_to_message {reply.get('message_id')} is not a message of chat "
                    f"{chat['id']} that the fake knows; inject it or let the bot send it first"
                )
            message["reply_to_message"] = without_reply(stored)
        self._store_message(copy.deepcopy(message))

    def _prepare_callback_query(self, query: JSONDict) -> None:
        if not isinstance(query.get("from"), dict):
            raise ControlError("a callback query needs 'from', the user who pressed the button")
        self._remember_user(query["from"])
        if "id" not in query:
            query["id"] = f"cbq{self.state.next_callback_id}"
            self.state.next_callback_id += 1
        query["id"] = str(query["id"])
        query.setdefault("chat_instance", "fake-chat-instance")
        stub = query.get("message")
        if isinstance(stub, dict) and "date" not in stub:
            chat_id = (stub.get("chat") or {}).get("id")
            if chat_id is None or "message_id" not in stub:
                raise ControlError("a callback query's message needs 'message_id' and 'chat.id'")
            stored = self.state.messages.get(message_key(chat_id, stub["message_id"]))
            if stored is None:  # Telegram sends an InaccessibleMessage: date 0.
                chat = self._find_chat(chat_id) or {"id": chat_id, "type": "supergroup"}
                stored = {"chat": chat, "message_id": stub["message_id"], "date": 0}
            query["message"] = copy.deepcopy(stored)
        self.state.callback_queries[query["id"]] = {"answered": False, "data": query.get("data")}

    def _prepare_member_update(self, body: JSONDict) -> None:
        chat = self._known_chat(body.get("chat"))
        body["chat"] = chat
        self._remember_user(body.get("from"))
        body.setdefault("date", int(time.time()))
        member = body.get("new_chat_member")
        if isinstance(member, dict) and isinstance(member.get("user"), dict):
            self.state.members[f"{chat['id']}:{member['user']['id']}"] = copy.deepcopy(member)
