"""Decoding a Bot API request: form values into JSON types, parse_mode=HTML into entities."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

from benchmarks.fake_bot_api.factories import utf16_len
from benchmarks.fake_bot_api.state import BotApiError, JSONDict, names

# Form-encoded parameters arrive as strings; these are decoded before the methods see them.
_JSON_PARAMS = names(
    "reply_markup reply_parameters entities caption_entities allowed_updates commands scope "
    "link_preview_options media results permissions"
)
_INT_PARAMS = names(
    "message_id offset limit user_id from_chat_id message_thread_id reply_to_message_id "
    "max_connections cache_time"
)
_BOOL_PARAMS = names(
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
