"""The Bot API methods the fake models, except getUpdates (see :mod:`.updates`).

Each ``_<method>`` takes the decoded parameters and returns the ``result``, or raises
:class:`~benchmarks.fake_bot_api.state.BotApiError`; ``FakeBotApi.__init__`` lists them.
"""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

from benchmarks.fake_bot_api.core import FakeBotApiCore, message_key, without_reply
from benchmarks.fake_bot_api.params import parse_html
from benchmarks.fake_bot_api.state import (
    CHAT_ACTIONS,
    MAX_CALLBACK_DATA_BYTES,
    MAX_TEXT_LENGTH,
    BotApiError,
    JSONDict,
)


class BotMethods(FakeBotApiCore):
    """Bot API method implementations: messages, callback answers, webhook, commands, chats."""

    def _get_me(self, _params: JSONDict) -> JSONDict:
        return {
            **self._bot_user_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _require_chat(self, chat_id: Any) -> JSONDict:
        if chat_id is None or chat_id == "":
            raise BotApiError.bad_request("chat_id is empty")
        chat = self._find_chat(chat_id)
        if chat is None:
            raise BotApiError.bad_request("chat not found")
        return chat

    def _checked_text(self, params: JSONDict) -> tuple[str, list[JSONDict] | None]:
        raw = params.get("text")
        if raw is None or not str(raw).strip():
            raise BotApiError.bad_request("message text is empty")
        text, entities = str(raw), params.get("entities")
        mode = str(params.get("parse_mode") or "").lower()
        if mode == "html":
            text, entities = parse_html(text)
        elif mode not in ("", "markdown", "markdownv2"):
            raise BotApiError.bad_request("unsupported parse_mode")
        if not text.strip():
            raise BotApiError.bad_request("message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise BotApiError.bad_request("message is too long")
        return text, entities or None

    @staticmethod
    def _checked_markup(params: JSONDict) -> JSONDict | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise BotApiError.bad_request("can't parse reply keyboard markup JSON object")
        keyboard = markup.get("inline_keyboard")
        if keyboard is None:
            return markup
        if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
            raise BotApiError.bad_request("inline keyboard must be an Array of Arrays")
        for button in (button for row in keyboard for button in row):
            if not isinstance(button, dict) or not button.get("text"):
                raise BotApiError.bad_request("inline keyboard button text is empty")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
                raise BotApiError.bad_request("BUTTON_DATA_INVALID")
        return markup

    def _reply_target(self, params: JSONDict, chat: JSONDict) -> JSONDict | None:
        reply = params.get("reply_parameters")
        if reply is None and params.get("reply_to_message_id") is not None:
            reply = {"message_id": params["reply_to_message_id"]}
        if reply is None:
            return None
        if not isinstance(reply, dict) or "message_id" not in reply:
            raise BotApiError.bad_request("invalid reply parameters specified")
        target_chat = self._require_chat(reply.get("chat_id", chat["id"]))
        stored = self.state.messages.get(message_key(target_chat["id"], reply["message_id"]))
        if stored is not None:
            return without_reply(stored)
        if reply.get("allow_sending_without_reply") or params.get("allow_sending_without_reply"):
            return None
        raise BotApiError.bad_request("message to be replied not found")

    def _send_message(self, params: JSONDict) -> JSONDict:
        chat = self._require_chat(params.get("chat_id"))
        text, entities = self._checked_text(params)
        reply_to = self._reply_target(params, chat)
        markup = self._checked_markup(params)
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": self._bot_user_json(),
            "chat": copy.deepcopy(chat),
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self._store_message(message)
        return copy.deepcopy(message)

    def _send_chat_action(self, params: JSONDict) -> bool:
        self._require_chat(params.get("chat_id"))
        if params.get("action") not in CHAT_ACTIONS:
            raise BotApiError.bad_request("wrong parameter action in request")
        return True

    def _editable_message(self, params: JSONDict) -> JSONDict:
        if params.get("inline_message_id"):
            raise BotApiError.bad_request("inline messages are not modelled by the fake")
        chat = self._require_chat(params.get("chat_id"))
        if params.get("message_id") is None:
            raise BotApiError.bad_request("message identifier is not specified")
        message = self.state.messages.get(message_key(chat["id"], params["message_id"]))
        if message is None:
            raise BotApiError.bad_request("message to edit not found")
        if message.get("from", {}).get("id") != self.config.bot_id:
            raise BotApiError.bad_request("message can't be edited")
        return message

    def _apply_edit(self, message: JSONDict, changes: JSONDict) -> JSONDict:
        if all(message.get(key) == value for key, value in changes.items()):
            raise BotApiError.bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _inline_markup(self, params: JSONDict) -> JSONDict | None:
        markup = self._checked_markup(params)
        return markup if markup is not None and "inline_keyboard" in markup else None

    def _edit_message_text(self, params: JSONDict) -> JSONDict:
        message = self._editable_message(params)
        text, entities = self._checked_text(params)
        changes = {"text": text, "entities": entities, "reply_markup": self._inline_markup(params)}
        return self._apply_edit(message, changes)

    def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        message = self._editable_message(params)
        return self._apply_edit(message, {"reply_markup": self._inline_markup(params)})

    def _delete_message(self, params: JSONDict) -> bool:
        chat = self._require_chat(params.get("chat_id"))
        key = message_key(chat["id"], params.get("message_id") or 0)
        if self.state.messages.pop(key, None) is None:
            raise BotApiError.bad_request("message to delete not found")
        return True

    def _answer_callback_query(self, params: JSONDict) -> bool:
        query = self.state.callback_queries.get(str(params.get("callback_query_id")))
        if query is None or query["answered"]:
            raise BotApiError.bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text") or "")) > 200:
            raise BotApiError.bad_request("MESSAGE_TOO_LONG")
        query["answered"] = True
        return True

    def _set_webhook(self, params: JSONDict) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return self._delete_webhook(params)
        if not re.match(r"https?://", url):
            raise BotApiError.bad_request("bad webhook: invalid webhook URL specified")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise BotApiError.bad_request("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self.state.updates = []
        if isinstance(params.get("allowed_updates"), list):
            self.state.allowed_updates = params["allowed_updates"] or None
        self.state.webhook = {
            "url": url,
            "secret_token": secret,
            "max_connections": params.get("max_connections") or 40,
        }
        self._restart_webhook_pusher()
        return True

    def _delete_webhook(self, params: JSONDict) -> bool:
        if params.get("drop_pending_updates"):
            self.state.updates = []
        self.state.webhook = {}
        self._restart_webhook_pusher()
        return True

    def _get_webhook_info(self, _params: JSONDict) -> JSONDict:
        webhook = self.state.webhook
        info: JSONDict = {
            "url": webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self.state.updates),
        }
        for key in ("max_connections", "last_error_date", "last_error_message"):
            if webhook.get(key) is not None:
                info[key] = webhook[key]
        if webhook.get("url") and self.state.allowed_updates:
            info["allowed_updates"] = self.state.allowed_updates
        return info

    @staticmethod
    def _commands_key(params: JSONDict) -> str:
        scope = json.dumps(params.get("scope") or {"type": "default"}, sort_keys=True)
        return f"{scope}|{params.get('language_code') or ''}"

    def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise BotApiError.bad_request("can't parse commands JSON object")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise BotApiError.bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise BotApiError.bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.state.commands[self._commands_key(params)] = commands
        return True

    def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return self.state.commands.get(self._commands_key(params), [])

    def _delete_my_commands(self, params: JSONDict) -> bool:
        self.state.commands.pop(self._commands_key(params), None)
        return True

    def _get_chat(self, params: JSONDict) -> JSONDict:
        chat = self._require_chat(params.get("chat_id"))
        gifts = (
            "unlimited_gifts limited_gifts unique_gifts premium_subscription gifts_from_channels"
        )
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": dict.fromkeys(gifts.split(), False),
        }

    def _get_chat_member(self, params: JSONDict) -> JSONDict:
        chat = self._require_chat(params.get("chat_id"))
        user_id = params.get("user_id")
        member = self.state.members.get(f"{chat['id']}:{user_id}")
        if member is not None:
            return member
        if user_id == self.config.bot_id:
            return {"status": "member", "user": self._bot_user_json()}
        user = self.state.users.get(str(user_id))
        if user is None:
            raise BotApiError.bad_request("user not found")
        return {"status": "member", "user": user}
