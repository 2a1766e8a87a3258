"""What the control API answers, typed for tests: recorded calls, counters, webhook pushes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.fake_bot_api.state import ChatId, JSONDict


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
