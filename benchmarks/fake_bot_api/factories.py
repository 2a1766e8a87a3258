"""Builders for the Telegram updates that tests and benchmarks inject into the fake Bot API.

Each builder returns the JSON of one ``Update`` without ``update_id``; the fake server
(:mod:`benchmarks.fake_bot_api`) assigns ``update_id``, fills in ``message_id`` and ``date``
where they are missing, and expands stubs such as ``{"message_id": 7}`` in ``reply_to_message``
or in a callback query's ``message`` from the messages it has stored.

    from benchmarks.fake_bot_api import factories as f

    alice = f.FakeUser(id=1001, first_name="Alice", username="alice")
    group = f.FakeChat.supergroup(-100123, "Cats")
    api.inject(f.group_mention(group, alice, "what do cats eat?"))
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

JSONDict = dict[str, Any]

DEFAULT_BOT_ID = 7000001
DEFAULT_BOT_USERNAME = "autoreply_test_bot"
DEFAULT_BOT_FIRST_NAME = "Autoreply Test Bot"
DEFAULT_TOKEN = f"{DEFAULT_BOT_ID}:AAFakeTokenForAutoreplyTests"

ChatType = Literal["private", "group", "supergroup", "channel"]
MemberStatus = Literal["member", "administrator", "left", "kicked"]


@dataclass(frozen=True)
class FakeUser:
    """A Telegram user (or bot) as it appears in ``from`` fields."""

    id: int
    first_name: str
    username: str | None = None
    is_bot: bool = False
    language_code: str | None = "en"

    def to_json(self) -> JSONDict:
        data: JSONDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username is not None:
            data["username"] = self.username
        if self.language_code is not None and not self.is_bot:
            data["language_code"] = self.language_code
        return data


@dataclass(frozen=True)
class FakeChat:
    """A chat; private chats share their id with the user, groups have negative ids."""

    id: int
    type: ChatType
    title: str | None = None
    username: str | None = None
    first_name: str | None = None

    @classmethod
    def private(cls, user: FakeUser) -> FakeChat:
        return cls(id=user.id, type="private", username=user.username, first_name=user.first_name)

    @classmethod
    def supergroup(cls, chat_id: int, title: str) -> FakeChat:
        return cls(id=chat_id, type="supergroup", title=title)

    @classmethod
    def channel(cls, chat_id: int, title: str, username: str | None = None) -> FakeChat:
        return cls(id=chat_id, type="channel", title=title, username=username)

    def to_json(self) -> JSONDict:
        data: JSONDict = {"id": self.id, "type": self.type}
        for key in ("title", "username", "first_name"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


def bot_user(
    bot_id: int = DEFAULT_BOT_ID,
    username: str = DEFAULT_BOT_USERNAME,
    first_name: str = DEFAULT_BOT_FIRST_NAME,
) -> FakeUser:
    """The bot itself, as the fake's getMe describes it by default."""
    return FakeUser(id=bot_id, first_name=first_name, username=username, is_bot=True)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of Telegram's entity offsets and lengths."""
    return len(text.encode("utf-16-le")) // 2


def entity_for(text: str, needle: str, entity_type: str, **extra: Any) -> JSONDict:
    """A MessageEntity covering the first occurrence of ``needle`` in ``text``."""
    index = text.find(needle)
    if index < 0:
        raise ValueError(f"{needle!r} does not occur in {text!r}; put it in the text first")
    return {
        "type": entity_type,
        "offset": utf16_len(text[:index]),
        "length": utf16_len(needle),
        **extra,
    }


def message_json(
    chat: FakeChat,
    sender: FakeUser | None,
    text: str | None,
    *,
    entities: list[JSONDict] | None = None,
    reply_to_message_id: int | None = None,
    message_id: int | None = None,
) -> JSONDict:
    """The JSON of a Message; ``message_id`` and ``date`` are filled in by the server if absent."""
    message: JSONDict = {"chat": chat.to_json()}
    if sender is not None:
        message["from"] = sender.to_json()
    if text is not None:
        message["text"] = text
    if entities:
        message["entities"] = entities
    if reply_to_message_id is not None:
        # A stub: the server replaces it with the stored message of that id in the same chat.
        message["reply_to_message"] = {"message_id": reply_to_message_id}
    if message_id is not None:
        message["message_id"] = message_id
    return message


def private_message(user: FakeUser, text: str) -> JSONDict:
    """A message to the bot in the user's private chat."""
    return {"message": message_json(FakeChat.private(user), user, text)}


def group_message(chat: FakeChat, user: FakeUser, text: str) -> JSONDict:
    """Plain group chatter that neither mentions nor replies to the bot."""
    return {"message": message_json(chat, user, text)}


def group_mention(
    chat: FakeChat,
    user: FakeUser,
    text: str = "hello",
    *,
    bot_username: str = DEFAULT_BOT_USERNAME,
) -> JSONDict:
    """A group message with a ``mention`` entity on ``@bot_username`` (prepended if absent)."""
    handle = f"@{bot_username}"
    if handle not in text:
        text = f"{handle} {text}"
    entity = entity_for(text, handle, "mention")
    return {"message": message_json(chat, user, text, entities=[entity])}


def text_mention(
    chat: FakeChat,
    user: FakeUser,
    text: str,
    mentioned: FakeUser,
    *,
    name: str | None = None,
) -> JSONDict:
    """A group message with a ``text_mention`` entity (a mention by name, carrying the user)."""
    name = name or mentioned.first_name
    if name not in text:
        text = f"{name}, {text}"
    entity = entity_for(text, name, "text_mention", user=mentioned.to_json())
    return {"message": message_json(chat, user, text, entities=[entity])}


def reply_to(chat: FakeChat, user: FakeUser, text: str, reply_to_message_id: int) -> JSONDict:
    """A message replying to an earlier message (for example the bot's) in the same chat."""
    message = message_json(chat, user, text, reply_to_message_id=reply_to_message_id)
    return {"message": message}


def command(chat: FakeChat, user: FakeUser, name: str, args: str = "") -> JSONDict:
    """A ``/name args`` message with its ``bot_command`` entity."""
    text = f"/{name} {args}".rstrip()
    entity = entity_for(text, f"/{name}", "bot_command")
    return {"message": message_json(chat, user, text, entities=[entity])}


def edited_message(chat: FakeChat, user: FakeUser, message_id: int, text: str) -> JSONDict:
    """A new version of an earlier message (``message_id`` must be the original's)."""
    message = message_json(chat, user, text, message_id=message_id)
    message["edit_date"] = int(time.time())
    return {"edited_message": message}


def channel_post(chat: FakeChat, text: str) -> JSONDict:
    """A post in a channel: no ``from``, ``sender_chat`` is the channel."""
    message = message_json(chat, None, text)
    message["sender_chat"] = chat.to_json()
    return {"channel_post": message}


def sticker_message(chat: FakeChat, user: FakeUser, emoji: str = "👍") -> JSONDict:
    """A message that carries a sticker and no text."""
    message = message_json(chat, user, None)
    message["sticker"] = {
        "file_id": "CAACAgIAAxkBAAFakeStickerFileId",
        "file_unique_id": "AgADFakeSticker",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": emoji,
    }
    return {"message": message}


def callback_query(
    user: FakeUser,
    data: str,
    *,
    chat_id: int,
    message_id: int,
    query_id: str | None = None,
) -> JSONDict:
    """A button press on message ``message_id`` of chat ``chat_id`` (expanded by the server).

    If the server does not know that message, it becomes an inaccessible message (``date`` 0).
    """
    query: JSONDict = {
        "from": user.to_json(),
        "chat_instance": f"ci{chat_id}",
        "data": data,
        "message": {"message_id": message_id, "chat": {"id": chat_id}},
    }
    if query_id is not None:
        query["id"] = query_id
    return {"callback_query": query}


def chat_member_json(user: FakeUser, status: MemberStatus) -> JSONDict:
    """A ChatMember of the given status with the fields PTB requires for it."""
    member: JSONDict = {"status": status, "user": user.to_json()}
    if status == "kicked":
        member["until_date"] = 0
    elif status == "administrator":
        rights = (
            "can_manage_chat can_delete_messages can_manage_video_chats can_restrict_members "
            "can_promote_members can_change_info can_invite_users can_post_stories "
            "can_edit_stories can_delete_stories"
        )
        member.update({"can_be_edited": False, "is_anonymous": False})
        member.update(dict.fromkeys(rights.split(), False))
    return member


def my_chat_member(
    chat: FakeChat,
    by: FakeUser,
    old_status: MemberStatus,
    new_status: MemberStatus,
    *,
    bot: FakeUser | None = None,
) -> JSONDict:
    """The bot's own membership changed, e.g. it was added to a group (left -> member)."""
    bot = bot or bot_user()
    return {
        "my_chat_member": {
            "chat": chat.to_json(),
            "from": by.to_json(),
            "date": int(time.time()),
            "old_chat_member": chat_member_json(bot, old_status),
            "new_chat_member": chat_member_json(bot, new_status),
        }
    }
