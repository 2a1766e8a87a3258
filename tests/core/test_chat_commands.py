"""/ban, /unban, /handoff and /handback as a chat platform delivers them: stored like any
command, applied through the moderation service in the same unit of work, refusals audited."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from bot.commands import answer_command
from bot.domain import Actor, ActorKind, ChatKind, Incoming
from bot.moderation import ModerationService
from bot.storage import history
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import AllowAll

MOD = Actor(ActorKind.TELEGRAM, "11", "@mod (11)", accounts=frozenset({"shop"}))
STRANGER = Actor(ActorKind.TELEGRAM, "66", "@eve (66)", accounts=frozenset())
MOD_CHAT = "-100"
_IDS = itertools.count(1)


def _command(db: Database, text: str, *, actor: Actor = MOD, chat: str = MOD_CHAT) -> str | None:
    name, _, args = text[1:].partition(" ")
    incoming = Incoming(
        platform="telegram",
        account="shop",
        chat_id=chat,
        message_id=f"cmd{next(_IDS)}",
        user_id=actor.id,
        text=text,
        chat_kind=ChatKind.GROUP if chat == MOD_CHAT else ChatKind.PRIVATE,
    )
    service = ModerationService(db, gate=AllowAll)
    with db.session() as s:
        stored = history.ingest(s, incoming)
        return answer_command(
            s,
            incoming,
            stored,
            name,
            args,
            actor=actor,
            in_review_chat=chat == MOD_CHAT,
            moderation=service,
        ).text


def _user_writes(db: Database, chat: str = "777") -> None:
    with db.session() as s:
        history.ingest(
            s,
            Incoming(
                platform="telegram",
                account="shop",
                chat_id=chat,
                message_id=f"u{next(_IDS)}",
                user_id=chat,
                text="hello",
            ),
        )


def test_ban_and_unban_from_the_moderators_chat(migrated_db: Database) -> None:
    _user_writes(migrated_db)
    assert "banned" in (_command(migrated_db, "/ban 777 spamming") or "")
    assert "already banned" in (_command(migrated_db, "/ban 777") or "")
    with migrated_db.session() as s:
        user = s.scalars(select(m.PlatformUser).where(m.PlatformUser.platform_user_id == "777"))
        assert user.one().banned_at is not None
    assert "no longer banned" in (_command(migrated_db, "/unban 777") or "")
    assert (_command(migrated_db, "/ban") or "").startswith("Usage: /ban USER_ID")


def test_handoff_and_handback_by_chat_id_or_in_the_chat(migrated_db: Database) -> None:
    _user_writes(migrated_db, "777")
    assert "handed to people" in (_command(migrated_db, "/handoff 777") or "")
    assert _handed_off(migrated_db, "777")
    assert "handed back" in (_command(migrated_db, "/handback 777") or "")
    assert not _handed_off(migrated_db, "777")
    assert (_command(migrated_db, "/handback") or "").startswith("Usage: /handback CHAT_ID")
    # In the user's own chat the chat id is implied.
    assert "handed to people" in (_command(migrated_db, "/handoff", chat="777") or "")
    assert "no chat" in (_command(migrated_db, "/handback 999") or "")


def _handed_off(db: Database, chat_id: str) -> bool:
    with db.session() as s:
        chat = s.scalars(select(m.Conversation).where(m.Conversation.chat_id == chat_id)).one()
        return chat.handed_off_at is not None


def test_non_moderators_are_refused(migrated_db: Database) -> None:
    _user_writes(migrated_db)
    assert _command(migrated_db, "/ban 777", actor=STRANGER) == "Only moderators can use /ban."
    with migrated_db.session() as s:
        user = s.scalars(select(m.PlatformUser).where(m.PlatformUser.platform_user_id == "777"))
        assert user.one().banned_at is None
        refusals = s.scalars(
            select(m.ModerationAction.note).where(m.ModerationAction.action == "refused")
        ).all()
    assert refusals == ["ban users: not a moderator of this account"]
