"""The Telegram channel with real PTB against the fake Bot API: what gets answered, odd updates,
rate limits, splitting, blocked users and commands."""

from __future__ import annotations

import asyncio
import logging

import pytest

from benchmarks.fake_bot_api import FakeBotApiClient
from benchmarks.fake_bot_api import factories as f
from bot.storage import models as m
from tests.fakes import OPERATOR, CannedDrafter
from tests.telegram.conftest import ALICE, BOB, MODERATOR, MODS, StartBot

GROUP = f.FakeChat.supergroup(-100111, "Shop fans")


def _replies(api: FakeBotApiClient, chat_id: int) -> list[int | None]:
    return [c.reply_to_message_id for c in api.sent_messages(chat_id)]


def test_dm_mention_and_reply_are_answered_chatter_is_kept(
    api: FakeBotApiClient, start_bot: StartBot
) -> None:
    api.add_chat(GROUP)
    api.add_chat(f.FakeChat.private(ALICE))
    bot = start_bot()
    dm = api.inject(f.private_message(ALICE, "hi, is the shop open today?"))["message"]
    chatter = api.inject(f.group_message(GROUP, BOB, "anyone tried the blue one?"))["message"]
    mention = api.inject(f.group_mention(GROUP, BOB, "is the blue one in stock?"))["message"]
    by_name = api.inject(
        f.text_mention(GROUP, ALICE, "can you help?", api.bot_user, name="Shopbot")
    )["message"]
    api.wait_for_calls(1, chat_id=ALICE.id)
    (first,) = api.wait_for_calls(2, chat_id=GROUP.id)[:1]
    follow_up = api.inject(f.reply_to(GROUP, ALICE, "thanks, and in red?", first.message_id or 0))[
        "message"
    ]
    api.wait_for_calls(3, chat_id=GROUP.id)
    bot.wait_until(lambda: bot.count(m.Message, m.Message.handled_at.is_(None)) == 0)
    bot.stop()

    assert _replies(api, ALICE.id) == [dm["message_id"]]
    assert sorted(r or 0 for r in _replies(api, GROUP.id)) == sorted(
        [mention["message_id"], by_name["message_id"], follow_up["message_id"]]
    )
    assert chatter["message_id"] not in _replies(api, GROUP.id)
    unaddressed = m.Message.addressed.is_(False) & (m.Message.direction == m.Direction.INBOUND)
    assert bot.count(m.Message, unaddressed) == 1  # the chatter, kept as context
    assert bot.count(m.Message, m.Message.direction == m.Direction.OUTBOUND) == 4


# Telegram's longest message (4,096 characters), written like a real long message: one
# character repeated would be spam to the safety gate and go to a moderator instead.
_QUESTIONS = (
    "Do you still stock model {n} of the blue running shoes?",
    "Which shop near the station carries item {n} on weekends?",
    "Can parcel {n} be collected from a locker instead of the counter?",
    "Is there a larger size of jacket {n} coming later this season?",
    "Does lamp {n} work with the older bulbs I bought last year?",
    "What colours does backpack {n} come in at the moment?",
    "Would gift card {n} cover the shipping as well as the book?",
    "How long is the warranty on kettle {n} when bought online?",
)
LONGEST_TEXT = " ".join(_QUESTIONS[n % len(_QUESTIONS)].format(n=1000 + 7 * n) for n in range(80))[
    :4096
]


def test_odd_updates_raise_nothing(
    api: FakeBotApiClient, start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    api.add_chat(GROUP)
    api.add_chat(f.FakeChat.private(ALICE))
    channel = f.FakeChat.channel(-100222, "News")
    api.add_chat(channel)
    caplog.set_level(logging.WARNING)
    bot = start_bot()
    odd = [
        f.private_message(ALICE, LONGEST_TEXT),
        f.private_message(ALICE, "שלום\u200f hello\u200b\u200d world \u202e"),
        f.private_message(ALICE, "nul\x00byte"),
        f.private_message(ALICE, "   "),
        f.sticker_message(GROUP, BOB),
        f.channel_post(channel, "a channel post"),
        f.callback_query(ALICE, "garbage-data", chat_id=ALICE.id, message_id=99999),
        f.callback_query(ALICE, "m1:a:1:AAAAAAAAAAAAAAAA", chat_id=ALICE.id, message_id=1),
    ]
    first = api.inject(f.group_mention(GROUP, BOB, "hello"))["message"]
    odd.append(f.edited_message(GROUP, BOB, first["message_id"], "@autoreply_test_bot edited"))
    api.inject_many(odd)
    bot.wait_until(lambda: api.counters().pending_updates == 0, what="all updates taken")
    api.wait_for_calls(3, chat_id=ALICE.id)
    bot.wait_until(lambda: bot.count(m.Message, m.Message.handled_at.is_(None)) == 0)
    bot.stop()

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    # The 4,096-character, RTL/zero-width and NUL messages get replies; the blank one doesn't
    # get a draft, and the callback presses are answered (not replies).
    assert len(api.sent_messages(ALICE.id)) == 3
    assert len(api.sent_messages(GROUP.id)) == 1  # the mention, not its edit or the sticker
    assert api.sent_messages(channel.id) == []
    assert bot.count(m.Message, m.Message.edit_version > 0) == 1  # the edit kept as a version


def test_rate_limit_on_one_chat_holds_back_only_that_chat(
    api: FakeBotApiClient, start_bot: StartBot
) -> None:
    chats = [f.FakeChat.supergroup(-100300 - i, f"group {i}") for i in range(5)]
    for chat in chats:
        api.add_chat(chat)
    slow = chats[0]
    api.rate_limit(slow.id, retry_after=2, count=1)
    bot = start_bot()
    for i, chat in enumerate(chats):
        api.inject(f.group_mention(chat, f.FakeUser(3000 + i, f"u{i}"), "where is my order?"))
    for chat in chats:
        api.wait_for_calls(1, chat_id=chat.id, timeout=15)
    bot.stop()

    limited = [c for c in api.calls("sendMessage", slow.id) if c.status == 429]
    assert len(limited) == 1
    slow_reply = api.sent_messages(slow.id)[0]
    others = [api.sent_messages(chat.id)[0] for chat in chats[1:]]
    # Every other chat was answered before the limited chat's wait was over.
    assert all(o.received_at < slow_reply.received_at for o in others)
    assert slow_reply.received_at - limited[0].received_at >= 1.9
    # How much the other chats are delayed, in seconds, is measured by benchmarks/telegram_bench.py
    # (timings in tests flake on a shared 2-core machine); here: they did not wait for it.


def test_long_reply_is_split_at_sentences(api: FakeBotApiClient, start_bot: StartBot) -> None:
    api.add_chat(f.FakeChat.private(ALICE))
    bot = start_bot(mode="review_all")
    question = api.inject(f.private_message(ALICE, "tell me everything"))["message"]
    bot.wait_until(lambda: bot.count(m.ReplyDraft) == 1, what="the draft")
    long_text = " ".join(f"Sentence number {i} explains one more detail." for i in range(300))
    assert len(long_text) > 8192
    result = bot.call(
        lambda: asyncio.to_thread(
            bot.service.running.moderation.edit,  # type: ignore[union-attr]
            OPERATOR,
            1,
            long_text,
        )
    )
    assert result.status == "edited"
    sent = m.ReplyDraft.status == m.DraftStatus.SENT
    bot.wait_until(lambda: bot.count(m.ReplyDraft, sent) == 1, what="the split reply")
    parts = api.sent_messages(ALICE.id)
    bot.stop()

    assert all(len(p.text or "") <= 4096 for p in parts)
    assert all((p.text or "").endswith(".") for p in parts)
    assert " ".join(p.text or "" for p in parts) == long_text
    assert parts[0].reply_to_message_id == question["message_id"]
    assert len(parts) == 4


def test_blocked_user_is_not_retried(api: FakeBotApiClient, start_bot: StartBot) -> None:
    api.add_chat(f.FakeChat.private(ALICE))
    api.add_chat(GROUP)
    api.block(ALICE.id)
    bot = start_bot()
    api.inject(f.private_message(ALICE, "hello?"))
    failed = m.OutboxItem.status == m.OutboxStatus.FAILED
    bot.wait_until(lambda: bot.count(m.OutboxItem, failed) == 1, what="the refused reply")
    # In a group the same user is still answered: a block only concerns private messages.
    api.inject(f.group_mention(GROUP, ALICE, "hello from the group"))
    api.wait_for_calls(1, chat_id=GROUP.id)
    bot.stop()

    assert len(api.calls("sendMessage", ALICE.id)) == 1  # one refused try, never retried
    assert bot.count(m.PlatformUser, m.PlatformUser.unreachable.is_(True)) == 1


def test_commands(api: FakeBotApiClient, start_bot: StartBot) -> None:
    api.add_chat(GROUP)
    api.add_chat(f.FakeChat.private(ALICE))
    bot = start_bot()
    api.inject(f.command(f.FakeChat.private(ALICE), ALICE, "start"))
    api.inject(f.command(GROUP, ALICE, "id"))
    api.inject(f.command(GROUP, BOB, "pause"))  # not a moderator
    api.inject(f.command(GROUP, MODERATOR, "pause"))
    api.wait_for_calls(1, chat_id=ALICE.id)
    api.wait_for_calls(3, chat_id=GROUP.id)
    api.inject(f.group_mention(GROUP, BOB, "anyone home?"))
    paused = m.Message.decision_reason.like("%paused%")
    bot.wait_until(lambda: bot.count(m.Message, paused) == 1, what="the paused mention")
    api.inject(f.command(GROUP, MODERATOR, "resume"))
    api.wait_for_calls(4, chat_id=GROUP.id)
    api.inject(f.group_mention(GROUP, BOB, "and now?"))
    api.wait_for_calls(5, chat_id=GROUP.id)
    bot.stop()

    texts = [c.text or "" for c in api.sent_messages(GROUP.id)]
    assert "/help" in (api.sent_messages(ALICE.id)[0].text or "")
    assert f"Chat id: {GROUP.id}" in texts[0] and f"Your user id: {ALICE.id}" in texts[0]
    assert texts[1] == "Only moderators can pause auto-replies."
    assert texts[2] == "Auto-replies paused in this chat."
    assert texts[3] == "Auto-replies resumed in this chat."
    assert texts[4] == CannedDrafter.text  # answered only after /resume
    assert bot.count(m.ReplyDraft) == 1


def test_reply_in_doubt_is_never_resent_and_moderators_are_told(
    api: FakeBotApiClient, start_bot: StartBot
) -> None:
    api.add_chat(f.FakeChat.private(ALICE))
    api.read_timeout(chat_id=ALICE.id, delay=8.0, count=1)  # delivered, but no answer in time
    bot = start_bot()
    api.inject(f.private_message(ALICE, "hello?"))
    unknown = m.OutboxItem.status == m.OutboxStatus.UNKNOWN
    bot.wait_until(lambda: bot.count(m.OutboxItem, unknown) == 1, timeout=30, what="in doubt")
    (notice,) = api.wait_for_calls(1, chat_id=MODS.id, timeout=15)
    bot.stop()

    assert len(api.calls("sendMessage", ALICE.id)) == 1  # not resent
    assert "may or may not have been delivered" in (notice.text or "")
    assert CannedDrafter.text in (notice.text or "")


def test_a_flood_from_one_user_gets_one_answer(api: FakeBotApiClient, start_bot: StartBot) -> None:
    api.add_chat(f.FakeChat.private(ALICE))
    bot = start_bot(telegram_user_cooldown_s=30)
    api.inject_many([f.private_message(ALICE, f"hello?? {n}") for n in range(20)])
    bot.wait_until(
        lambda: (
            bot.count(m.Message, m.Message.direction == m.Direction.INBOUND) == 20
            and bot.count(m.Message, m.Message.handled_at.is_(None)) == 0
        ),
        what="all twenty handled",
    )
    api.wait_for_calls(1, chat_id=ALICE.id)
    bot.stop()

    assert len(api.sent_messages(ALICE.id)) == 1
    cooled = m.Message.decision_reason.like("cooldown%")
    assert bot.count(m.Message, cooled) == 19  # stored, analysed, not answered
