"""The moderators' chat: draft cards, button presses, edit by reply, refusals."""

from __future__ import annotations

from benchmarks.fake_bot_api import FakeBotApiClient
from benchmarks.fake_bot_api import factories as f
from benchmarks.fake_bot_api.results import RecordedCall
from bot.channels.callback_data import derive_key, sign
from bot.storage import models as m
from tests.telegram.conftest import ALICE, MALLORY, MODERATOR, MODS, RunningBot, StartBot

PRIVATE = f.FakeChat.private(ALICE)


def _queue_one(
    api: FakeBotApiClient, start_bot: StartBot, text: str
) -> tuple[RunningBot, RecordedCall, dict[str, object]]:
    api.add_chat(PRIVATE)
    bot = start_bot(mode="review_all")
    asked = api.inject(f.private_message(ALICE, text))["message"]
    (card,) = api.wait_for_calls(1, chat_id=MODS.id)
    return bot, card, asked


def _press(api: FakeBotApiClient, user: f.FakeUser, card: RecordedCall, index: int) -> None:
    data = card.callback_data[index]
    api.inject(f.callback_query(user, data, chat_id=MODS.id, message_id=card.message_id or 0))


def _answers(api: FakeBotApiClient) -> list[str]:
    return [str(c.params.get("text", "")) for c in api.calls("answerCallbackQuery")]


def test_card_quotes_the_message_and_approve_sends_it(
    api: FakeBotApiClient, start_bot: StartBot
) -> None:
    bot, card, asked = _queue_one(api, start_bot, "where is my order #1234?")
    assert "where is my order #1234?" in (card.text or "")
    assert "Intent: question" in (card.text or "")
    assert [b["text"] for b in card.inline_keyboard[0]] == ["Approve", "Edit", "Reject"]
    assert all(len(d.encode()) <= 64 for d in card.callback_data)
    assert api.sent_messages(ALICE.id) == []  # review_all: nothing goes out on its own

    _press(api, MODERATOR, card, 0)
    (reply,) = api.wait_for_calls(1, chat_id=ALICE.id)
    api.wait_for_calls(1, "editMessageText", MODS.id)
    _press(api, MODERATOR, card, 0)  # a second press changes nothing
    bot.wait_until(lambda: len(api.calls("answerCallbackQuery")) == 2)
    bot.stop()

    assert reply.reply_to_message_id == asked["message_id"]
    (edited,) = [c for c in api.calls("editMessageText") if c.status == 200]
    assert "Approved by @mo_the_mod (2001)" in (edited.text or "")
    assert edited.reply_markup in (None, {}) or edited.inline_keyboard == []  # buttons gone
    assert "already sent" in _answers(api)[1]
    assert len(api.sent_messages(ALICE.id)) == 1
    with bot.db.session() as s:
        actions = [
            a.action.value for a in s.query(m.ModerationAction).order_by(m.ModerationAction.id)
        ]
    assert actions == ["approve"]


def test_edit_by_replying_to_the_card(api: FakeBotApiClient, start_bot: StartBot) -> None:
    bot, card, asked = _queue_one(api, start_bot, "my parcel never came")
    _press(api, MODERATOR, card, 1)  # Edit: tells the moderator to reply to the card
    bot.wait_until(lambda: len(api.calls("answerCallbackQuery")) == 1)
    assert "Reply to this card" in _answers(api)[0]
    api.inject(
        f.reply_to(
            MODS, MODERATOR, "So sorry! Please DM us the order number.", card.message_id or 0
        )
    )
    (reply,) = api.wait_for_calls(1, chat_id=ALICE.id)
    api.wait_for_calls(1, "editMessageText", MODS.id)
    bot.stop()

    assert reply.text == "So sorry! Please DM us the order number."
    assert reply.reply_to_message_id == asked["message_id"]
    with bot.db.session() as s:
        edit = s.query(m.ModerationAction).one()
        assert edit.action is m.ModerationKind.EDIT
        assert edit.after_text == "So sorry! Please DM us the order number."
    # The moderator's reply in the moderators' chat is never answered as a user message.
    assert [c.text for c in api.sent_messages(MODS.id)] == [card.text]


def test_reject_sends_nothing(api: FakeBotApiClient, start_bot: StartBot) -> None:
    bot, card, _ = _queue_one(api, start_bot, "hello")
    _press(api, MODERATOR, card, 2)
    api.wait_for_calls(1, "editMessageText", MODS.id)
    bot.stop()
    assert api.sent_messages(ALICE.id) == []
    assert bot.count(m.ReplyDraft, m.ReplyDraft.status == m.DraftStatus.REJECTED) == 1


def test_non_moderators_cannot_act(api: FakeBotApiClient, start_bot: StartBot) -> None:
    bot, card, _ = _queue_one(api, start_bot, "hello")
    for index in range(3):
        _press(api, MALLORY, card, index)
    anonymous = f.FakeUser(1087968824, "Group", "GroupAnonymousBot", is_bot=True)
    _press(api, anonymous, card, 0)
    api.inject(f.reply_to(MODS, MALLORY, "I take over this account", card.message_id or 0))
    # A forged button: right shape, signed with another key.
    forged = sign("approve", 1, derive_key("123:another-bot-token"))
    api.inject(f.callback_query(MALLORY, forged, chat_id=MODS.id, message_id=card.message_id or 0))
    bot.wait_until(lambda: len(api.calls("answerCallbackQuery")) == 5)
    bot.wait_until(lambda: api.counters().pending_updates == 0)
    bot.stop()

    assert api.sent_messages(ALICE.id) == []
    assert bot.count(m.ReplyDraft, m.ReplyDraft.status == m.DraftStatus.QUEUED) == 1
    assert [c for c in api.calls("editMessageText") if c.status == 200] == []
    refused = m.ModerationAction.action == m.ModerationKind.REFUSED
    assert bot.count(m.ModerationAction, refused) == 5  # 3 presses, the anonymous admin, the reply
    assert bot.count(m.ModerationAction) == 5
    assert "no longer valid" in _answers(api)[-1]
