"""What the fake knows: its config, the Bot API's limits and texts, errors, fault rules, state.

Everything here is plain data; :class:`FakeBotApiState` is JSON so a state file can carry it
across restarts of the fake.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmarks.fake_bot_api.factories import (
    DEFAULT_BOT_FIRST_NAME,
    DEFAULT_BOT_USERNAME,
    DEFAULT_TOKEN,
    FakeUser,
)

JSONDict = dict[str, Any]
ChatId = int | str


def names(words: str) -> frozenset[str]:
    """The set of the whitespace-separated words in ``words``."""
    return frozenset(words.split())


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
CHAT_ACTIONS = names(
    "typing upload_photo record_video upload_video record_voice upload_voice upload_document "
    "choose_sticker find_location record_video_note upload_video_note"
)
# Update types Telegram leaves out unless allowed_updates names them.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
MESSAGE_KINDS = frozenset({"message", "edited_message", "channel_post", "edited_channel_post"})


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
