"""A fake Telegram Bot API server for tests: real python-telegram-bot talks HTTP to it.

Point PTB at it with ``ApplicationBuilder().base_url(client.bot_base_url)`` or
``Bot(client.token, base_url=client.bot_base_url)``. The fake keeps all of its state (pending
updates, the offset, every call the bot made, fault rules) in the server, which runs either in
a background thread with its own event loop (:class:`FakeBotApiServer`) or in a subprocess
(:class:`FakeBotApiProcess`, ``python -m tests.telegram.fake_bot_api --port 0``), so a bot
process can be killed and restarted while the server keeps going. Tests drive and inspect it
through a small JSON control API under ``/_control/<action>``, wrapped by
:class:`FakeBotApiClient`::

    with FakeBotApiServer() as server, server.client() as api:
        api.add_chat(moderators)
        api.inject(factories.group_mention(group, alice, "hi"))
        api.rate_limit(group.id, retry_after=5, count=1)
        ...  # run the bot against api.bot_base_url
        sent = api.wait_for_calls(1, chat_id=group.id)
        assert sent[0].reply_to_message_id == ...

Bot API behaviour follows https://core.telegram.org/bots/api where PTB depends on it: the
``{"ok": ..., "result"/"error_code"/"description"/"parameters"}`` envelope, getUpdates offsets
(an update is confirmed by any later call whose offset is above its id), long polling, 409 while
a webhook is set or when a newer getUpdates call takes over, and webhook pushes with the secret
header.

Control actions (POST JSON to ``/_control/<action>``, answer ``{"ok": true, "result": ...}``):
config, reset, add_chat, inject, pending_updates, calls, wait_calls, messages, counters,
get_updates_log, add_fault, faults, remove_fault, clear_faults, webhook, webhook_deliveries,
push_raw, save, shutdown; each is a ``FakeBotApi._control_<action>`` method.

With ``state_file`` set, the state is loaded at start and saved every ``autosave_interval``
seconds and at shutdown (SIGTERM), so even the fake itself can be restarted.

Limitations: MarkdownV2/Markdown texts are not validated; text length counts code points;
webhook pushes are sequential (one connection) and give up after ``webhook_max_attempts``;
inline messages (``inline_message_id``), file uploads and methods not listed in
``FakeBotApi.__init__`` are not modelled (unknown methods answer 404 and are recorded).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx
import tornado.httpserver
import tornado.netutil
import tornado.web
from tornado.http1connection import HTTP1Connection

from tests.telegram.factories import (
    DEFAULT_BOT_FIRST_NAME,
    DEFAULT_BOT_USERNAME,
    DEFAULT_TOKEN,
    FakeChat,
    FakeUser,
    utf16_len,
)

JSONDict = dict[str, Any]
ChatId = int | str


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


READY_PREFIX = "FAKE_BOT_API_READY"
REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_TEXT_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
NOT_FOUND = "Not Found"
BLOCKED = "Forbidden: bot was blocked by the user"
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)


POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CHAT_ACTIONS = _names(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document "
    "choose_sticker find_location record_video_note upload_video_note"
)
# Update types Telegram leaves out unless allowed_updates names them.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
MESSAGE_KINDS = frozenset({"message", "edited_message", "channel_post", "edited_channel_post"})

# Form-encoded parameters arrive as strings; these are decoded before the methods see them.
_JSON_PARAMS = _names(
    "reply_markup reply_parameters entities caption_entities allowed_updates commands scope "
    "link_preview_options media results permissions"
)
_INT_PARAMS = _names(
    "message_id offset limit user_id from_chat_id message_thread_id reply_to_message_id "
    "max_connections cache_time"
)
_BOOL_PARAMS = _names(
    "disable_notification protect_content show_alert drop_pending_updates "
    "allow_sending_without_reply disable_web_page_preview revoke_messages"
)
_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


class BotApiError(Exception):
    """An error answer of the Bot API: HTTP status, description and optional parameters."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    @classmethod
    def bad_request(cls, detail: str) -> BotApiError:
        return cls(400, f"Bad Request: {detail}")

    def envelope(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class ControlError(Exception):
    """A control-API request the fake cannot honour; the message says what to change."""


class FakeBotApiControlError(RuntimeError):
    """Raised by :class:`FakeBotApiClient` when the fake refused a control request."""


@dataclass(frozen=True)
class FakeBotApiConfig:
    """How the fake presents itself. The bot id is the number before ``:`` in the token."""

    token: str = field(default=DEFAULT_TOKEN, metadata={"help": "the only token accepted"})
    bot_username: str = field(default=DEFAULT_BOT_USERNAME, metadata={"help": "getMe username"})
    bot_first_name: str = field(default=DEFAULT_BOT_FIRST_NAME, metadata={"help": "getMe name"})
    first_update_id: int = field(default=1, metadata={"help": "update_id of the first update"})
    state_file: Path | None = field(
        default=None, metadata={"help": "JSON file the state is loaded from and saved to"}
    )
    webhook_max_attempts: int = field(
        default=5, metadata={"help": "pushes of one update before the fake drops it"}
    )
    webhook_retry_delay: float = field(
        default=0.1, metadata={"help": "seconds before the first retry; doubles, capped at 2"}
    )
    webhook_timeout: float = field(default=5.0, metadata={"help": "seconds per webhook push"})
    autosave_interval: float = field(
        default=1.0, metadata={"help": "seconds between saves of a changed state to state_file"}
    )

    def __post_init__(self) -> None:
        bot_id, sep, secret = self.token.partition(":")
        if not (sep and bot_id.isdigit() and secret):
            raise ValueError(f"token {self.token!r} must look like '<bot id>:<secret>'")
        if self.webhook_max_attempts < 1:
            raise ValueError("webhook_max_attempts must be at least 1")
        if self.autosave_interval <= 0:
            raise ValueError("autosave_interval must be positive (seconds)")

    @property
    def bot_id(self) -> int:
        return int(self.token.partition(":")[0])

    def bot_user(self) -> FakeUser:
        return FakeUser(self.bot_id, self.bot_first_name, self.bot_username, is_bot=True)

    def to_cli_args(self) -> list[str]:
        args = ["--token", self.token, "--bot-username", self.bot_username]
        args += ["--bot-first-name", self.bot_first_name]
        args += ["--first-update-id", str(self.first_update_id)]
        args += ["--webhook-max-attempts", str(self.webhook_max_attempts)]
        args += ["--webhook-retry-delay", str(self.webhook_retry_delay)]
        args += ["--autosave-interval", str(self.autosave_interval)]
        if self.state_file is not None:
            args += ["--state-file", str(self.state_file)]
        return args


FaultAction = Literal["error", "latency", "read_timeout", "drop"]


@dataclass
class FaultRule:
    """One injected fault. ``method``/``chat_id`` None match any; ``count`` None is unlimited.

    ``until`` is a ``time.monotonic()`` deadline (one clock for all processes on a host).
    Actions: ``error`` answers ``error_code``/``description``/``parameters`` (a 429 without
    ``retry_after`` gets the seconds left until ``until``); ``latency`` waits ``delay`` seconds
    before handling; ``read_timeout`` handles the call, then holds the answer for ``delay``
    seconds; ``drop`` closes the connection without an answer, after handling the call when
    ``after_processing`` is set.
    """

    id: int
    action: FaultAction
    method: str | None = "sendMessage"
    chat_id: ChatId | None = None
    count: int | None = 1
    until: float | None = None
    error_code: int = 400
    description: str = "Bad Request: injected fault"
    parameters: JSONDict | None = None
    delay: float = 0.0
    after_processing: bool = False

    def matches(self, method: str, chat_id: Any, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.method is not None and self.method.lower() != method.lower():
            return False
        return self.chat_id is None or str(self.chat_id) == str(chat_id)

    def to_error(self, now: float) -> BotApiError:
        parameters = dict(self.parameters or {})
        if self.error_code == 429 and "retry_after" not in parameters:
            left = (self.until - now) if self.until is not None else 1.0
            parameters["retry_after"] = max(1, math.ceil(left))
        if self.error_code == 429 and self.description == FaultRule.description:
            return BotApiError(
                429, f"Too Many Requests: retry after {parameters['retry_after']}", parameters
            )
        return BotApiError(self.error_code, self.description, parameters or None)


@dataclass
class FakeBotApiState:
    """Everything the fake remembers; plain JSON so it can be saved and loaded."""

    next_update_id: int = 1
    updates: list[JSONDict] = field(default_factory=list)
    allowed_updates: list[str] | None = None
    last_confirmed_offset: int = 0
    get_updates_calls: int = 0
    get_updates_log: list[JSONDict] = field(default_factory=list)
    injected_updates: int = 0
    method_calls: dict[str, int] = field(default_factory=dict)
    chats: dict[str, JSONDict] = field(default_factory=dict)
    users: dict[str, JSONDict] = field(default_factory=dict)
    members: dict[str, JSONDict] = field(default_factory=dict)
    next_message_id: dict[str, int] = field(default_factory=dict)
    messages: dict[str, JSONDict] = field(default_factory=dict)
    callback_queries: dict[str, JSONDict] = field(default_factory=dict)
    next_callback_id: int = 1
    calls: list[JSONDict] = field(default_factory=list)
    faults: list[FaultRule] = field(default_factory=list)
    next_fault_id: int = 1
    webhook: JSONDict = field(default_factory=dict)
    webhook_deliveries: list[JSONDict] = field(default_factory=list)
    commands: dict[str, list[JSONDict]] = field(default_factory=dict)

    def to_json(self) -> JSONDict:
        """A shallow view for json.dumps (``asdict`` would deep-copy megabytes of calls)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["faults"] = [asdict(rule) for rule in self.faults]
        return data

    @classmethod
    def from_json(cls, data: JSONDict) -> FakeBotApiState:
        data = dict(data)
        faults = [FaultRule(**rule) for rule in data.pop("faults", [])]
        return cls(**data, faults=faults)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json()), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load_or_new(cls, config: FakeBotApiConfig) -> FakeBotApiState:
        path = config.state_file
        if path is not None and path.exists():
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        return cls(next_update_id=config.first_update_id)


def coerce_params(raw: dict[str, Any]) -> JSONDict:
    """Decode form values the way the Bot API does: JSON objects, integers, booleans."""
    params: JSONDict = {}
    for name, value in raw.items():
        if not isinstance(value, str):
            params[name] = value
        elif name in _JSON_PARAMS:
            try:
                params[name] = json.loads(value)
            except ValueError:
                raise BotApiError.bad_request(f"can't parse {name} JSON object") from None
        elif name in _INT_PARAMS or (name == "chat_id" and re.fullmatch(r"-?\d+", value)):
            try:
                params[name] = int(value)
            except ValueError:
                raise BotApiError.bad_request(f"invalid {name} specified") from None
        elif name in _BOOL_PARAMS:
            params[name] = value.lower() in ("true", "1")
        else:
            params[name] = value
    return params


class _TelegramHtml(HTMLParser):
    """Checks parse_mode=HTML the way Telegram does and collects text and entities."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.position = 0
        self.open_tags: list[tuple[str, int, JSONDict]] = []
        self.entities: list[JSONDict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        kind = _HTML_ENTITY_TYPES.get(tag)
        if kind is None or (tag == "span" and attributes.get("class") != "tg-spoiler"):
            raise _entity_error(f'Unsupported start tag "{tag}"')
        entity: JSONDict = {"type": kind}
        if tag == "a":
            if not attributes.get("href"):
                raise _entity_error('Can\'t find "href" attribute of the "a" tag')
            entity["url"] = attributes["href"]
        elif tag == "tg-emoji":
            entity["custom_emoji_id"] = attributes.get("emoji-id") or ""
        elif tag == "blockquote" and "expandable" in attributes:
            entity["type"] = "expandable_blockquote"
        self.open_tags.append((tag, self.position, entity))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise _entity_error(f'Unsupported start tag "{tag}"')

    def handle_endtag(self, tag: str) -> None:
        if not self.open_tags:
            raise _entity_error(f'Unexpected end tag "{tag}"')
        open_tag, start, entity = self.open_tags.pop()
        if open_tag != tag:
            raise _entity_error(f'Unmatched end tag "{tag}", expected "</{open_tag}>"')
        if self.position > start:
            self.entities.append({**entity, "offset": start, "length": self.position - start})

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.position += utf16_len(data)

    def handle_comment(self, data: str) -> None:
        raise _entity_error("Comments are not supported")

    def handle_decl(self, decl: str) -> None:
        raise _entity_error("Declarations are not supported")


def _entity_error(detail: str) -> BotApiError:
    return BotApiError.bad_request(f"can't parse entities: {detail}")


def parse_html(text: str) -> tuple[str, list[JSONDict]]:
    """Plain text and entities of an HTML message, or 400 "can't parse entities"."""
    if re.search(r"<(?![A-Za-z/])", text):
        raise _entity_error('Unsupported start tag "" (escape "<" as "&lt;")')
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.open_tags:
        tag = parser.open_tags[-1][0]
        raise _entity_error(f'Can\'t find end tag corresponding to start tag "{tag}"')
    return "".join(parser.parts), sorted(parser.entities, key=lambda e: e["offset"])


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


def _message_key(chat_id: Any, message_id: Any) -> str:
    return f"{int(chat_id)}:{int(message_id)}"


def _update_kind(update: JSONDict) -> str:
    return next(key for key in update if key != "update_id")


def _without_reply(message: JSONDict) -> JSONDict:
    """Telegram nests replies one level deep only."""
    copied = copy.deepcopy(message)
    copied.pop("reply_to_message", None)
    return copied


class FakeBotApi:
    """The fake's behaviour. Runs on one event loop, so it needs no locks.

    :meth:`handle` serves Bot API calls, :meth:`control` the test-facing actions. Call
    :meth:`start` on the serving loop before the first request and :meth:`close` at the end.
    """

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

    # ----------------------------------------------------------------- Bot API calls

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

    def _closing(self) -> bool:
        return self._shutdown is not None and self._shutdown.done()

    def _confirm(self, offset: int) -> None:
        state = self.state
        if offset > 0:
            state.updates = [u for u in state.updates if u["update_id"] >= offset]
            state.last_confirmed_offset = max(state.last_confirmed_offset, offset)
        elif offset < 0:
            state.updates = state.updates[offset:]

    def _select_updates(self, limit: int) -> list[JSONDict]:
        allowed = self.state.allowed_updates
        kept = []
        for update in self.state.updates:
            kind = _update_kind(update)
            if (kind in allowed) if allowed else (kind not in OPT_IN_UPDATES):
                kept.append(update)
        self.state.updates = kept
        return copy.deepcopy(kept[:limit])

    # ----------------------------------------------------------------- Bot API methods

    def _bot_user_json(self) -> JSONDict:
        return self.config.bot_user().to_json()

    def _get_me(self, _params: JSONDict) -> JSONDict:
        return {
            **self._bot_user_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _find_chat(self, chat_id: Any) -> JSONDict | None:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            name = chat_id[1:].lower()
            found = (c for c in self.state.chats.values() if str(c.get("username")).lower() == name)
            return next(found, None)
        try:
            return self.state.chats.get(str(int(chat_id)))
        except (TypeError, ValueError):
            return None

    def _require_chat(self, chat_id: Any) -> JSONDict:
        if chat_id is None or chat_id == "":
            raise BotApiError.bad_request("chat_id is empty")
        chat = self._find_chat(chat_id)
        if chat is None:
            raise BotApiError.bad_request("chat not found")
        return chat

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
        self.state.messages[_message_key(chat_id, message_id)] = message

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
        stored = self.state.messages.get(_message_key(target_chat["id"], reply["message_id"]))
        if stored is not None:
            return _without_reply(stored)
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
        message = self.state.messages.get(_message_key(chat["id"], params["message_id"]))
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
        key = _message_key(chat["id"], params.get("message_id") or 0)
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
            stored = self.state.messages.get(_message_key(chat["id"], reply.get("message_id", 0)))
            if stored is None:
                raise ControlError(
                    f"reply_to_message {reply.get('message_id')} is not a message of chat "
                    f"{chat['id']} that the fake knows; inject it or let the bot send it first"
                )
            message["reply_to_message"] = _without_reply(stored)
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
            stored = self.state.messages.get(_message_key(chat_id, stub["message_id"]))
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
            status, error, _ = await _post(
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

    # ----------------------------------------------------------------- control API

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
            status, error, text = await _post(
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


async def _post(
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


# --------------------------------------------------------------------- HTTP layer


def _quiet_log(_handler: tornado.web.RequestHandler) -> None:
    """Tornado's access log would print the bot token with every URL."""


class _Handler(tornado.web.RequestHandler):
    def initialize(self, api: FakeBotApi) -> None:
        self.api = api
        self._gone = False
        self._closed: asyncio.Future[None] | None = None

    def on_connection_close(self) -> None:
        self._gone = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def closed_future(self) -> asyncio.Future[None]:
        """Completes when the client hangs up."""
        self._closed = asyncio.get_running_loop().create_future()
        if self._gone:
            self._closed.set_result(None)
        return self._closed

    def send_json(self, status: int, body: JSONDict) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class _BotApiHandler(_Handler):
    SUPPORTED_METHODS = ("GET", "POST")

    async def get(self, token: str, method: str) -> None:
        await self.post(token, method)

    async def post(self, token: str, method: str) -> None:
        closed = self.closed_future()
        if token != self.api.config.token:
            self.send_json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        try:
            params = coerce_params(self._raw_params())
        except BotApiError as err:
            self.send_json(err.code, err.envelope())
            return
        reply = await self.api.handle(method, params, closed)
        if reply.delay:
            await self.api.wait(reply.delay, closed)
        if closed.done():
            return  # The client hung up (read timeout): nobody to answer.
        if reply.body is None:
            connection = self.request.connection
            if isinstance(connection, HTTP1Connection):
                connection.stream.close()
            return
        self.send_json(reply.status, reply.body)

    def _raw_params(self) -> dict[str, Any]:
        request = self.request
        raw: dict[str, Any] = {k: v[-1].decode() for k, v in request.query_arguments.items()}
        if request.headers.get("Content-Type", "").startswith("application/json"):
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                raise BotApiError.bad_request("can't parse JSON request body") from None
            if not isinstance(body, dict):
                raise BotApiError.bad_request("the JSON request body must be an object")
            raw.update(body)
        else:  # Form-encoded or multipart; tornado has parsed both.
            raw.update({k: v[-1].decode() for k, v in request.body_arguments.items()})
            raw.update({k: f"<file {v[-1].filename}>" for k, v in request.files.items()})
        return raw


class _ControlHandler(_Handler):
    async def post(self, action: str) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
            result = await self.api.control(action, body)
        except (ControlError, ValueError, TypeError, KeyError) as err:
            self.send_json(400, {"ok": False, "description": f"{type(err).__name__}: {err}"})
            return
        self.send_json(200, {"ok": True, "result": result})


def make_app(api: FakeBotApi) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/bot([^/]+)/([A-Za-z]+)/?", _BotApiHandler, {"api": api}),
            (r"/_control/([a-z_]+)", _ControlHandler, {"api": api}),
        ],
        log_function=_quiet_log,
    )


async def serve(
    api: FakeBotApi,
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_ready: Callable[[int], None],
) -> None:
    """Serve ``api`` on ``host:port`` (0 picks a free port) until ``stop`` is set."""
    sockets = tornado.netutil.bind_sockets(port, host)
    server = tornado.httpserver.HTTPServer(make_app(api))
    server.add_sockets(sockets)
    try:
        await api.start(stop)
        on_ready(int(sockets[0].getsockname()[1]))
        await stop.wait()
    finally:
        server.stop()
        await api.close()
        await server.close_all_connections()


# --------------------------------------------------------------------- test-side API


@dataclass(frozen=True)
class RecordedCall:
    """One Bot API call the bot made, as the fake saw it.

    ``received_at``/``finished_at`` are the server's ``time.monotonic()`` (comparable with the
    test's own on the same host). ``delivered`` means the call took effect (the message exists),
    even when the bot never saw the answer (``outcome`` "read_timeout" or "dropped").
    """

    seq: int
    method: str
    chat_id: ChatId | None
    message_id: int | None
    text: str | None
    params: JSONDict
    received_at: float
    finished_at: float | None
    date: int
    status: int | None
    outcome: str
    delivered: bool
    description: str | None
    result: Any

    @classmethod
    def from_json(cls, data: JSONDict) -> RecordedCall:
        values: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        return cls(**values)

    @property
    def reply_parameters(self) -> JSONDict | None:
        value = self.params.get("reply_parameters")
        return value if isinstance(value, dict) else None

    @property
    def reply_to_message_id(self) -> int | None:
        if self.reply_parameters is not None:
            return int(self.reply_parameters["message_id"])
        legacy = self.params.get("reply_to_message_id")
        return None if legacy is None else int(legacy)

    @property
    def reply_markup(self) -> JSONDict | None:
        value = self.params.get("reply_markup")
        return value if isinstance(value, dict) else None

    @property
    def inline_keyboard(self) -> list[list[JSONDict]]:
        return list((self.reply_markup or {}).get("inline_keyboard", []))

    @property
    def callback_data(self) -> list[str]:
        return [
            b["callback_data"] for row in self.inline_keyboard for b in row if "callback_data" in b
        ]


@dataclass(frozen=True)
class Counters:
    get_updates_calls: int
    last_confirmed_offset: int
    next_update_id: int
    pending_updates: int
    injected_updates: int
    active_long_polls: int
    calls: int
    method_calls: dict[str, int]
    webhook_url: str


@dataclass(frozen=True)
class WebhookPush:
    """The receiver's answer to a push: ``status`` 0 when it could not be reached."""

    status: int
    error: str | None
    body: str


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
        """Queue one update built with :mod:`tests.telegram.factories`; returns it as stored."""
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


class FakeBotApiServer:
    """Runs the fake in a daemon thread with its own event loop, for in-process tests."""

    def __init__(
        self, config: FakeBotApiConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or FakeBotApiConfig()
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> FakeBotApiClient:
        return FakeBotApiClient(self.url)

    def start(self, timeout: float = 10.0) -> FakeBotApiServer:
        if self._thread is not None:
            raise RuntimeError("this FakeBotApiServer is already running")
        self._thread = threading.Thread(target=self._run, name="fake-bot-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the fake Bot API did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"the fake Bot API failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        api = FakeBotApi(self.config, FakeBotApiState.load_or_new(self.config))

        def ready(port: int) -> None:
            self.port = port
            self._ready.set()

        await serve(api, host=self.host, port=self.port, stop=self._stop, on_ready=ready)

    def stop(self, timeout: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop is not None and thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the fake Bot API thread did not stop within {timeout}s")

    def __enter__(self) -> FakeBotApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class FakeBotApiProcess:
    """Runs ``python -m tests.telegram.fake_bot_api`` so the fake outlives bot processes."""

    def __init__(
        self, config: FakeBotApiConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or FakeBotApiConfig()
        self.host = host
        self.port = port
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def client(self) -> FakeBotApiClient:
        return FakeBotApiClient(self.url)

    def start(self, timeout: float = 15.0) -> FakeBotApiProcess:
        if self._process is not None:
            raise RuntimeError("this FakeBotApiProcess is already running")
        command = [sys.executable, "-m", "tests.telegram.fake_bot_api"]
        command += ["--host", self.host, "--port", str(self.port), *self.config.to_cli_args()]
        self._process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        readable, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if readable else ""
        if not line.startswith(READY_PREFIX):
            code = self.stop()
            raise RuntimeError(
                f"the fake Bot API process did not report ready within {timeout}s "
                f"(exit code {code}); its stderr is above"
            )
        self.url = line.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (the fake saves its state file), SIGKILL after ``timeout``; the exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def __enter__(self) -> FakeBotApiProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------- standalone entry point


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = FakeBotApiConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=defaults.token)
    parser.add_argument("--bot-username", default=defaults.bot_username)
    parser.add_argument("--bot-first-name", default=defaults.bot_first_name)
    parser.add_argument("--first-update-id", type=int, default=defaults.first_update_id)
    parser.add_argument("--state-file", type=Path, default=None)
    parser.add_argument("--webhook-max-attempts", type=int, default=defaults.webhook_max_attempts)
    parser.add_argument("--webhook-retry-delay", type=float, default=defaults.webhook_retry_delay)
    parser.add_argument("--autosave-interval", type=float, default=defaults.autosave_interval)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT or ``/_control/shutdown``; prints the ready line on stdout."""
    args = _parse_args(argv)
    config = FakeBotApiConfig(
        token=args.token,
        bot_username=args.bot_username,
        bot_first_name=args.bot_first_name,
        first_update_id=args.first_update_id,
        state_file=args.state_file,
        webhook_max_attempts=args.webhook_max_attempts,
        webhook_retry_delay=args.webhook_retry_delay,
        autosave_interval=args.autosave_interval,
    )
    asyncio.run(_serve_standalone(config, args.host, args.port))
    return 0


async def _serve_standalone(config: FakeBotApiConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready(bound_port: int) -> None:
        print(f"{READY_PREFIX} http://{host}:{bound_port}", flush=True)

    api = FakeBotApi(config, FakeBotApiState.load_or_new(config))
    await serve(api, host=host, port=port, stop=stop, on_ready=ready)


if __name__ == "__main__":
    raise SystemExit(main())
