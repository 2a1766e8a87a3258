"""erase-user also removes the moderators' notices that quote the user (the URGENT self-harm
alert, the handoff notice), with their copies in the moderators' chat history, on both
backends. The notices name the user with a tag (`outbox_store.user_tag`); another user's
notices, even with an id that starts the same, stay."""

from __future__ import annotations

from sqlalchemy import select

from bot import privacy
from bot.storage import models as m
from bot.storage.db import Database
from tests.core.test_policy_pipeline import MOD_CHAT, _account, _build, _msg, _run, _sent
from tests.fakes import OPERATOR


def _moderators_texts(db: Database) -> list[str]:
    """What the database keeps of the moderators' chat: notices and cards, and the copies of
    the sent ones in its history."""
    with db.session() as s:
        chat = select(m.Conversation.id).where(m.Conversation.chat_id == MOD_CHAT)
        outbox = s.scalars(select(m.OutboxItem.text).where(m.OutboxItem.conversation_id.in_(chat)))
        history = s.scalars(select(m.Message.text).where(m.Message.conversation_id.in_(chat)))
        return [*outbox, *history]


def test_erasing_a_user_removes_the_notices_that_quote_them(migrated_db: Database) -> None:
    pipeline, outbox, channel = _build(migrated_db, _account(safe_response="Please call 988."))
    _run(
        pipeline,
        outbox,
        _msg(1, "I want to hurt myself tonight", user="u1"),
        _msg(2, "real person pls", user="u1"),
        _msg(3, "agent please", user="u10", chat="c2"),
    )
    notices = [t for chat, kind, t in _sent(channel) if chat == MOD_CHAT and kind == "notice"]
    assert len(notices) == 3 and "hurt myself" in notices[0] and "(user id u1)" in notices[0]
    assert sum("(user id u1)" in t for t in _moderators_texts(migrated_db)) == 4  # rows, copies

    [removed] = privacy.erase_user(migrated_db, OPERATOR, "console", "u1")

    assert removed.counts["moderator_notices"] == 2
    assert "2 moderator_notices" in removed.summary()
    kept = _moderators_texts(migrated_db)
    assert not any("hurt myself" in t or "(user id u1)" in t for t in kept)
    assert sum("(user id u10)" in t for t in kept) == 2  # the other user's notice and copy
