"""The fake Bot API against real python-telegram-bot: what the Telegram adapter's tests rely on."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from telegram import (
    Bot,
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import HTTPXRequest

from benchmarks.fake_bot_api import (
    REPO_ROOT,
    FakeBotApiClient,
    FakeBotApiConfig,
    FakeBotApiControlError,
    FakeBotApiProcess,
    parse_html,
    wait_until,
)
from benchmarks.fake_bot_api import factories as f

T = TypeVar("T")

ALICE = f.FakeUser(1001, "Alice", "alice")
BOB = f.FakeUser(1002, "Bob")
GROUP = f.FakeChat.supergroup(-1001234, "Cat lovers")
MODERATORS = f.FakeChat.supergroup(-1009999, "Moderators")
CHANNEL = f.FakeChat.channel(-1005555, "News", "news")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def make_bot(api: FakeBotApiClient, *, read_timeout: float = 5.0) -> Bot:
    request = HTTPXRequest(read_timeout=read_timeout)
    return Bot(api.token, base_url=api.bot_base_url, request=request)


def seconds(value: int | timedelta) -> float:
    """RetryAfter.retry_after is a timedelta with PTB_TIMEDELTA=1, an int without."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# The `fake_server` and `api` fixtures live in tests/telegram/conftest.py.


# ------------------------------------------------------------------ requests and identity


def test_get_me_and_tokens(api: FakeBotApiClient) -> None:
    async def scenario() -> None:
        async with make_bot(api) as bot:  # initialize() calls getMe
            me = await bot.get_me()
            assert (me.id, me.username, me.is_bot) == (f.DEFAULT_BOT_ID, "autoreply_test_bot", True)
            with pytest.raises(EndPointNotFound):
                await bot.do_api_request("noSuchMethod")
        with pytest.raises(InvalidToken):  # raised by getMe in initialize()
            async with Bot("1:wrong", base_url=api.bot_base_url):
                pass

    run(scenario())
    assert api.counters().method_calls["getMe"] == 2  # the wrong token never got in


def test_json_bodies_and_error_envelopes(api: FakeBotApiClient) -> None:
    api.add_chat(GROUP)
    base = f"{api.bot_base_url}{api.token}"
    sent = httpx.post(f"{base}/sendMessage", json={"chat_id": GROUP.id, "text": "hi"}).json()
    assert sent["ok"] and sent["result"]["text"] == "hi"
    assert sent["result"]["from"]["username"] == "autoreply_test_bot"
    multipart = httpx.post(
        f"{base}/sendMessage",
        data={"chat_id": str(GROUP.id), "text": "multi"},
        files={"document": ("a.txt", b"x")},
    ).json()
    assert multipart["result"]["text"] == "multi"
    missing = httpx.post(f"{base}/nope", data={}).json()
    assert missing == {"ok": False, "error_code": 404, "description": "Not Found"}
    unauthorized = httpx.post(f"{api.bot_base_url}1:bad/getMe")
    assert unauthorized.status_code == 401
    assert unauthorized.json()["description"] == "Unauthorized"
    assert api.calls("nope")[0].status == 404
    api.rate_limit(GROUP.id, retry_after=5)
    limited = httpx.post(f"{base}/sendMessage", data={"chat_id": GROUP.id, "text": "x"})
    assert limited.status_code == 429
    assert limited.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 5",
        "parameters": {"retry_after": 5},
    }


# ------------------------------------------------------------------ getUpdates


def test_get_updates_offset_semantics(api: FakeBotApiClient) -> None:
    first, second, third = api.inject_many(
        [
            f.private_message(ALICE, "one"),
            f.private_message(ALICE, "two"),
            f.group_message(GROUP, BOB, "three"),
        ]
    )

    async def scenario() -> None:
        async with make_bot(api) as bot:
            updates = await bot.get_updates()
            assert [u.update_id for u in updates] == [1, 2, 3]
            assert [u.update_id for u in await bot.get_updates(limit=2)] == [1, 2]  # unconfirmed
            confirmed = await bot.get_updates(offset=second["update_id"])
            assert [u.update_id for u in confirmed] == [2, 3]
            assert [u.update_id for u in await bot.get_updates(offset=-1)] == [3]
            assert await bot.get_updates(offset=third["update_id"] + 1) == ()

    run(scenario())
    assert first["update_id"] == 1
    counters = api.counters()
    assert counters.last_confirmed_offset == 4
    assert counters.pending_updates == 0
    assert counters.get_updates_calls == 5
    assert [entry["offset"] for entry in api.get_updates_log()] == [0, 0, 2, -1, 4]


def test_long_poll_returns_early_when_an_update_is_injected(api: FakeBotApiClient) -> None:
    async def scenario() -> float:
        async with make_bot(api) as bot:
            assert await bot.get_updates(timeout=timedelta(milliseconds=300)) == ()

            async def inject_later() -> None:
                await asyncio.sleep(0.3)
                await asyncio.to_thread(api.inject, f.private_message(ALICE, "wake up"))

            injector = asyncio.create_task(inject_later())
            started = time.monotonic()
            updates = await bot.get_updates(timeout=10)
            elapsed = time.monotonic() - started
            await injector
            assert updates[0].message is not None and updates[0].message.text == "wake up"
            return elapsed

    assert 0.25 < run(scenario()) < 2.0


def test_second_long_poll_terminates_the_first(api: FakeBotApiClient) -> None:
    async def scenario() -> None:
        async with make_bot(api) as first, make_bot(api) as second:
            old = asyncio.create_task(first.get_updates(timeout=10))
            await asyncio.to_thread(wait_until, lambda: api.counters().active_long_polls == 1)
            new = asyncio.create_task(second.get_updates(timeout=timedelta(milliseconds=500)))
            with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates"):
                await old
            assert await new == ()

    run(scenario())


def test_every_factory_parses_as_the_right_ptb_object(api: FakeBotApiClient) -> None:
    api.add_chat(MODERATORS)

    async def scenario() -> tuple[Update, ...]:
        async with make_bot(api) as bot:
            api.inject(f.group_message(GROUP, BOB, "chatter"))  # makes GROUP known
            card = await bot.send_message(GROUP.id, "bot says hi")
            api.inject_many(
                [
                    f.private_message(ALICE, "hello"),
                    f.group_mention(GROUP, ALICE, "héllo 👋 @autoreply_test_bot?"),
                    f.text_mention(GROUP, ALICE, "can you help", api.bot_user),
                    f.reply_to(GROUP, BOB, "thanks", card.message_id),
                    f.edited_message(GROUP, BOB, 1, "chatter (edited)"),
                    f.channel_post(CHANNEL, "news!"),
                    f.sticker_message(GROUP, BOB),
                    f.command(f.FakeChat.private(ALICE), ALICE, "start", "now"),
                    f.callback_query(
                        ALICE, "approve:1", chat_id=GROUP.id, message_id=card.message_id
                    ),
                    f.callback_query(ALICE, "gone", chat_id=GROUP.id, message_id=999),
                    f.my_chat_member(MODERATORS, ALICE, "left", "administrator"),
                ]
            )
            return await bot.get_updates(offset=2)

    updates = run(scenario())
    private, mention, text_mention, reply, edited, post, sticker, cmd, cbq, stale, member = updates
    assert private.message and private.message.chat.type == "private"
    assert mention.message and mention.message.parse_entities(["mention"]).popitem()[1] == (
        "@autoreply_test_bot"
    )
    assert text_mention.message and text_mention.message.entities[0].user
    assert text_mention.message.entities[0].user.id == f.DEFAULT_BOT_ID
    assert reply.message and reply.message.reply_to_message
    assert reply.message.reply_to_message.from_user
    assert reply.message.reply_to_message.from_user.id == f.DEFAULT_BOT_ID
    assert edited.edited_message and edited.edited_message.text == "chatter (edited)"
    assert post.channel_post and post.channel_post.from_user is None
    assert sticker.message and sticker.message.sticker and sticker.message.text is None
    assert cmd.message and cmd.message.parse_entities(["bot_command"]).popitem()[1] == "/start"
    assert cbq.callback_query and isinstance(cbq.callback_query.message, Message)
    assert cbq.callback_query.message.text == "bot says hi"
    assert stale.callback_query and stale.callback_query.message
    assert not stale.callback_query.message.is_accessible
    assert member.my_chat_member and member.my_chat_member.new_chat_member.status == "administrator"


# ------------------------------------------------------------------ sending and recording


def test_send_message_with_reply_parameters_is_recorded(api: FakeBotApiClient) -> None:
    incoming = api.inject(f.group_mention(GROUP, ALICE, "what do cats eat?"))
    asked_id = incoming["message"]["message_id"]

    async def scenario() -> Message:
        async with make_bot(api) as bot:
            return await bot.send_message(
                GROUP.id, "Fish, mostly.", reply_parameters=ReplyParameters(asked_id)
            )

    sent = run(scenario())
    assert sent.reply_to_message and sent.reply_to_message.message_id == asked_id
    (call,) = api.sent_messages(GROUP.id)
    assert call.reply_parameters == {"message_id": asked_id}
    assert call.reply_to_message_id == asked_id
    assert (call.text, call.message_id, call.outcome, call.status) == (
        "Fish, mostly.",
        sent.message_id,
        "ok",
        200,
    )
    assert call.received_at <= time.monotonic()
    assert [m["text"] for m in api.messages(GROUP.id)] == [
        "@autoreply_test_bot what do cats eat?",
        "Fish, mostly.",
    ]


def test_send_message_validation(api: FakeBotApiClient) -> None:
    api.add_chat(GROUP)

    async def scenario() -> None:
        async with make_bot(api) as bot:
            for text, pattern in [
                ("x" * 4097, "message is too long"),
                ("   ", "message text is empty"),
            ]:
                with pytest.raises(BadRequest, match=rf"(?i){pattern}"):
                    await bot.send_message(GROUP.id, text)
            await bot.send_message(GROUP.id, "x" * 4096)
            for html in ["<b>open", "<div>x</div>", "a < b", "<i>x</b>"]:
                with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
                    await bot.send_message(GROUP.id, html, parse_mode="HTML")
            with pytest.raises(BadRequest, match=r"(?i)chat not found"):
                await bot.send_message(-42, "hello?")
            with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
                await bot.send_message(GROUP.id, "re", reply_parameters=ReplyParameters(999))
            button = InlineKeyboardButton("too long", callback_data="x" * 65)
            with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
                await bot.send_message(GROUP.id, "k", reply_markup=InlineKeyboardMarkup([[button]]))

    run(scenario())
    assert [c.status for c in api.calls("sendMessage")] == [
        400,
        400,
        200,
        400,
        400,
        400,
        400,
        400,
        400,
        400,
    ]


def test_parse_html_gives_text_and_utf16_entities() -> None:
    text, entities = parse_html('👋 <b>hi</b> <a href="https://x.y">link</a> &lt;3')
    assert text == "👋 hi link <3"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 2},
        {"type": "text_link", "url": "https://x.y", "offset": 6, "length": 4},
    ]


def test_moderation_card_keyboard_edits_and_callback_answers(api: FakeBotApiClient) -> None:
    api.add_chat(MODERATORS)
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Approve", callback_data="ok:7"),
                InlineKeyboardButton("Reject", callback_data="no:7"),
            ]
        ]
    )

    async def scenario() -> CallbackQuery:
        async with make_bot(api) as bot:
            card = await bot.send_message(MODERATORS.id, "Draft #7", reply_markup=keyboard)
            await bot.send_chat_action(MODERATORS.id, "typing")
            api.inject(
                f.callback_query(BOB, "ok:7", chat_id=MODERATORS.id, message_id=card.message_id)
            )
            (update,) = await bot.get_updates()
            query = update.callback_query
            assert query is not None and query.data == "ok:7"
            assert await query.answer("Approved")
            with pytest.raises(BadRequest, match=r"(?i)query is too old"):
                await query.answer("twice")
            await bot.edit_message_text("Draft #7: approved", MODERATORS.id, card.message_id)
            with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
                await bot.edit_message_text("Draft #7: approved", MODERATORS.id, card.message_id)
            smaller = InlineKeyboardMarkup([[InlineKeyboardButton("Undo", callback_data="undo:7")]])
            edited = await bot.edit_message_reply_markup(
                MODERATORS.id, card.message_id, reply_markup=smaller
            )
            assert isinstance(edited, Message) and edited.edit_date is not None
            return query

    run(scenario())
    (card,) = api.sent_messages(MODERATORS.id)
    assert card.callback_data == ["ok:7", "no:7"]
    assert card.inline_keyboard[0][1]["text"] == "Reject"
    edits = api.calls("editMessageText", MODERATORS.id)
    assert [(c.text, c.status) for c in edits] == [
        ("Draft #7: approved", 200),
        ("Draft #7: approved", 400),
    ]
    (markup_edit,) = api.calls("editMessageReplyMarkup")
    assert markup_edit.callback_data == ["undo:7"]
    (stored,) = api.messages(MODERATORS.id)
    assert stored["text"] == "Draft #7: approved"
    assert stored["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "undo:7"
    answers = api.calls("answerCallbackQuery")
    assert [(c.params["text"], c.delivered) for c in answers] == [
        ("Approved", True),
        ("twice", False),
    ]
    assert [c.params["action"] for c in api.calls("sendChatAction")] == ["typing"]


def test_chat_commands_members_and_deletion(api: FakeBotApiClient) -> None:
    api.inject(f.my_chat_member(MODERATORS, ALICE, "left", "administrator"))
    commands = [BotCommand("start", "Start talking"), BotCommand("help", "What I can do")]

    async def scenario() -> None:
        async with make_bot(api) as bot:
            assert await bot.set_my_commands(commands)
            assert await bot.get_my_commands() == tuple(commands)
            chat = await bot.get_chat(MODERATORS.id)
            assert (chat.id, chat.title) == (MODERATORS.id, "Moderators")
            member = await bot.get_chat_member(MODERATORS.id, f.DEFAULT_BOT_ID)
            assert member.status == "administrator"
            note = await bot.send_message(MODERATORS.id, "temporary")
            assert await bot.delete_message(MODERATORS.id, note.message_id)
            with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
                await bot.delete_message(MODERATORS.id, note.message_id)
            assert await bot.log_out()
            assert await bot.close()

    run(scenario())
    assert api.messages(MODERATORS.id) == []
    with pytest.raises(FakeBotApiControlError, match="timed out"):
        api.wait_for_calls(1, chat_id=GROUP.id, timeout=0.1)


# ------------------------------------------------------------------ faults


def test_rate_limit_raises_retry_after_and_spares_other_chats(api: FakeBotApiClient) -> None:
    api.add_chat(GROUP)
    api.add_chat(MODERATORS)
    api.rate_limit(GROUP.id, retry_after=5, count=2)

    async def scenario() -> None:
        async with make_bot(api) as bot:
            for _ in range(2):
                with pytest.raises(RetryAfter) as caught:
                    await bot.send_message(GROUP.id, "too fast")
                assert seconds(caught.value.retry_after) == 5
            await bot.send_message(MODERATORS.id, "unaffected")
            await bot.send_message(GROUP.id, "now fine")

    run(scenario())
    calls = api.calls("sendMessage")
    assert [(c.chat_id, c.status) for c in calls] == [
        (GROUP.id, 429),
        (GROUP.id, 429),
        (MODERATORS.id, 200),
        (GROUP.id, 200),
    ]
    assert calls[2].received_at - calls[1].received_at < 1.0


def test_rate_limit_for_a_duration_reports_the_seconds_left(api: FakeBotApiClient) -> None:
    api.add_chat(GROUP)
    api.rate_limit(GROUP.id, retry_after=None, count=None, duration=3.0)

    async def scenario() -> float:
        async with make_bot(api) as bot:
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(GROUP.id, "hi")
            return seconds(caught.value.retry_after)

    assert run(scenario()) == 3
    assert len(api.faults()) == 1


def test_blocked_chat_raises_forbidden_until_unblocked(api: FakeBotApiClient) -> None:
    api.add_chat(f.FakeChat.private(ALICE))
    api.block(ALICE.id)

    async def scenario() -> None:
        async with make_bot(api) as bot:
            with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
                await bot.send_message(ALICE.id, "hi")
            with pytest.raises(Forbidden):
                await bot.send_chat_action(ALICE.id, "typing")
            api.unblock(ALICE.id)
            await bot.send_message(ALICE.id, "hi again")

    run(scenario())
    assert [c.text for c in api.sent_messages(ALICE.id)] == ["hi again"]


def test_read_timeout_delivers_but_leaves_the_bot_in_doubt(api: FakeBotApiClient) -> None:
    api.add_chat(GROUP)
    api.read_timeout(chat_id=GROUP.id, delay=5.0)

    async def scenario() -> BaseException | None:
        async with make_bot(api, read_timeout=0.3) as bot:
            with pytest.raises(TimedOut) as caught:
                await bot.send_message(GROUP.id, "did it arrive?")
            return caught.value.__cause__

    assert isinstance(run(scenario()), httpx.ReadTimeout)
    (call,) = api.calls("sendMessage")
    assert (call.delivered, call.outcome, call.status) == (True, "read_timeout", 200)
    assert [m["text"] for m in api.messages(GROUP.id)] == ["did it arrive?"]


def test_dropped_connections_and_latency(api: FakeBotApiClient) -> None:
    api.add_chat(GROUP)
    api.drop_connection(chat_id=GROUP.id)
    api.drop_connection(chat_id=GROUP.id, after_processing=True)
    api.latency("sendChatAction", 0.3)

    async def scenario() -> float:
        async with make_bot(api) as bot:
            for _ in range(2):
                with pytest.raises(NetworkError):
                    await bot.send_message(GROUP.id, "lost?")
            started = time.monotonic()
            await bot.send_chat_action(GROUP.id, "typing")
            return time.monotonic() - started

    assert run(scenario()) >= 0.3
    assert [(c.outcome, c.delivered) for c in api.calls("sendMessage")] == [
        ("dropped", False),
        ("dropped", True),
    ]


def test_get_updates_faults(api: FakeBotApiClient) -> None:
    api.fail("getUpdates", 502, "Bad Gateway")

    async def scenario() -> None:
        async with make_bot(api) as bot:
            with pytest.raises(NetworkError, match="Bad Gateway"):
                await bot.get_updates()
            assert await bot.get_updates() == ()

    run(scenario())


# ------------------------------------------------------------------ webhook mode


class _Receiver(tornado.web.RequestHandler):
    """Accepts pushes like PTB's webhook handler: exact content type and secret, else 403."""

    def initialize(self, received: list[tuple[str, dict[str, Any]]], failures: list[int]) -> None:
        self.received = received
        self.failures = failures

    def post(self) -> None:
        secret = self.request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        if self.request.headers.get("Content-Type") != "application/json" or secret != "s3cret":
            raise tornado.web.HTTPError(403)
        if self.failures:
            raise tornado.web.HTTPError(self.failures.pop())
        self.received.append((secret, json.loads(self.request.body)))


def test_webhook_push_with_secret_retries_and_conflict(api: FakeBotApiClient) -> None:
    received: list[tuple[str, dict[str, Any]]] = []
    failures = [500]  # the first push fails once, then Telegram-style retry succeeds

    async def scenario() -> None:
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        app = tornado.web.Application(
            [("/hook", _Receiver, {"received": received, "failures": failures})],
            log_function=lambda _handler: None,
        )
        receiver = tornado.httpserver.HTTPServer(app)
        receiver.add_sockets(sockets)
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hook"
        try:
            async with make_bot(api) as bot:
                assert await bot.set_webhook(url, secret_token="s3cret")
                with pytest.raises(Conflict, match=r"(?i)webhook is active"):
                    await bot.get_updates()
                await asyncio.to_thread(api.inject, f.private_message(ALICE, "pushed"))
                for _ in range(100):
                    if received:
                        break
                    await asyncio.sleep(0.05)
                info = await bot.get_webhook_info()
                assert (info.url, info.pending_update_count) == (url, 0)
                assert info.last_error_message and "500" in info.last_error_message
                wrong = await asyncio.to_thread(api.push_raw, {"update_id": 99}, secret="nope")
                missing = await asyncio.to_thread(api.push_raw, {"update_id": 99}, secret=None)
                text = await asyncio.to_thread(
                    api.push_raw, {"update_id": 99}, secret="s3cret", content_type="text/plain"
                )
                assert (wrong.status, missing.status, text.status) == (403, 403, 403)
                assert await bot.delete_webhook()
                assert await bot.get_updates() == ()
        finally:
            receiver.stop()

    run(scenario())
    ((secret, update),) = received
    assert secret == "s3cret" and update["message"]["text"] == "pushed"
    assert [d["status"] for d in api.webhook_deliveries()] == [500, 200]


# ------------------------------------------------------------------ standalone process

_KILLABLE_BOT = """
import asyncio, sys
from telegram import Bot

async def main() -> None:
    async with Bot(sys.argv[1], base_url=sys.argv[2]) as bot:
        updates = await bot.get_updates()
        print(",".join(str(u.update_id) for u in updates), flush=True)
        await bot.get_updates(offset=updates[-1].update_id + 1, timeout=60)

asyncio.run(main())
"""


def test_subprocess_keeps_state_across_killed_bots_and_restarts(tmp_path: Path) -> None:
    state_file = tmp_path / "fake.json"
    config = FakeBotApiConfig(state_file=state_file, first_update_id=500)
    with FakeBotApiProcess(config) as server, server.client() as api:
        api.inject(f.group_mention(GROUP, ALICE, "first"))
        bot_process = subprocess.Popen(
            [sys.executable, "-c", _KILLABLE_BOT, api.token, api.bot_base_url],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert bot_process.stdout is not None
            assert bot_process.stdout.readline().strip() == "500"
            wait_until(lambda: api.counters().active_long_polls == 1, what="the bot's long poll")
            bot_process.send_signal(signal.SIGKILL)
            bot_process.wait(5)
        finally:
            bot_process.kill()
            if bot_process.stdout is not None:
                bot_process.stdout.close()
        wait_until(lambda: api.counters().active_long_polls == 0, what="the fake to see the kill")
        api.inject(f.group_mention(GROUP, BOB, "second"))

        async def restarted_bot() -> list[int]:
            async with Bot(api.token, base_url=api.bot_base_url) as bot:
                ids = [u.update_id for u in await bot.get_updates()]
                await bot.send_message(GROUP.id, "answer to second")
                return ids

        assert run(restarted_bot()) == [501]  # 500 was confirmed by the killed bot's offset
        assert run(restarted_bot()) == [501]  # a second session: still unconfirmed
        assert api.counters().last_confirmed_offset == 501

    saved = json.loads(state_file.read_text())
    assert saved["next_update_id"] == 502
    with FakeBotApiProcess(config) as server, server.client() as api:
        counters = api.counters()
        assert (counters.last_confirmed_offset, counters.pending_updates) == (501, 1)
        assert [c.text for c in api.sent_messages(GROUP.id)] == ["answer to second"] * 2
