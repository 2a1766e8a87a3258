"""Human handoff over the Bot API: the user asks for a person, the moderators answer by replying
to the card, /handback gives the chat back to the bot."""

from __future__ import annotations

from sqlalchemy import select

from benchmarks.fake_bot_api import FakeBotApiClient
from benchmarks.fake_bot_api import factories as f
from bot.policy import DEFAULT_HANDOFF_REPLY
from bot.storage import models as m
from tests.telegram.conftest import ALICE, MODERATOR, MODS, StartBot

PRIVATE = f.FakeChat.private(ALICE)


def test_handoff_reply_by_card_and_handback(api: FakeBotApiClient, start_bot: StartBot) -> None:
    api.add_chat(PRIVATE)
    bot = start_bot()
    api.inject(f.private_message(ALICE, "can I talk to a real person?"))
    (ack,) = api.wait_for_calls(1, chat_id=ALICE.id)
    (notice,) = api.wait_for_calls(1, chat_id=MODS.id)
    assert ack.text == DEFAULT_HANDOFF_REPLY
    assert "asked for a person" in (notice.text or "")

    api.inject(f.private_message(ALICE, "my parcel never came"))
    _, card = api.wait_for_calls(2, chat_id=MODS.id)
    assert "handed to people" in (card.text or "")
    # Nothing to approve: the card asks for the moderator's own answer.
    assert [b["text"] for b in card.inline_keyboard[0]] == ["Reply", "Reject"]
    api.inject(
        f.callback_query(
            MODERATOR, card.callback_data[0], chat_id=MODS.id, message_id=card.message_id or 0
        )
    )
    bot.wait_until(lambda: len(api.calls("answerCallbackQuery")) == 1)
    (pressed,) = api.calls("answerCallbackQuery")
    assert pressed.params.get("text") == "Reply to this card with your answer to send it."
    api.inject(f.reply_to(MODS, MODERATOR, "Hi, Mo here: I'm on it.", card.message_id or 0))
    _, answer = api.wait_for_calls(2, chat_id=ALICE.id)
    assert answer.text == "Hi, Mo here: I'm on it."

    api.inject(f.command(MODS, MODERATOR, "handback", str(ALICE.id)))
    calls = api.wait_for_calls(3, chat_id=MODS.id)
    assert any("handed back" in (c.text or "") for c in calls)
    api.inject(f.private_message(ALICE, "where is my order #1234?"))
    api.wait_for_calls(3, chat_id=ALICE.id)  # the bot answers on its own again
    bot.stop()

    with bot.db.session() as s:
        actions = s.scalars(select(m.ModerationAction.action).order_by(m.ModerationAction.id)).all()
    assert [a.value for a in actions] == ["handoff", "reply", "handback", "auto_send"]
