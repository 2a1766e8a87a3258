"""Two Telegram bots served by one process, each with its own Bot API, mode and moderators.

In-process: the real service and real PTB against two fake Bot API servers, the accounts read
from an autoreply.toml with `[[accounts]]` (the benchmark's, benchmarks/accounts_bench.py) and
their tokens from environment variables, the way an operator configures them. The
SIGKILL-and-restart version with 400 mentions runs the real `autoreply run` subprocess:
tests/telegram/test_exactly_once.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from benchmarks.accounts_bench import BANK_MODERATOR, SHOP_MODERATOR, write_config
from benchmarks.fake_bot_api import FakeBotApiClient, FakeBotApiServer
from benchmarks.fake_bot_api import factories as f
from benchmarks.fake_bot_api.state import FakeBotApiConfig
from bot.accounts import load_accounts
from bot.config import load_settings
from bot.storage import models as m
from tests.telegram.conftest import RunningBot, launch

SHOP_MODS = f.FakeChat.supergroup(-1009001, "Shop moderators")
BANK_MODS = f.FakeChat.supergroup(-1009002, "Bank moderators")
SHOP_MOD = f.FakeUser(SHOP_MODERATOR, "Sam", "shopmod")
BANK_MOD = f.FakeUser(BANK_MODERATOR, "Bea", "bankmod")
GROUP = f.FakeChat.supergroup(-100777, "Fans")  # the same chat id on both bots
CAROL = f.FakeUser(1234, "Carol", "carol")


@pytest.fixture
def apis() -> Iterator[tuple[FakeBotApiClient, FakeBotApiClient]]:
    with (
        FakeBotApiServer(FakeBotApiConfig(token="111111:shop-secret")) as shop_server,
        FakeBotApiServer(FakeBotApiConfig(token="222222:bank-secret")) as bank_server,
        shop_server.client() as shop,
        bank_server.client() as bank,
    ):
        for api, mods in ((shop, SHOP_MODS), (bank, BANK_MODS)):
            api.add_chat(mods)
            api.add_chat(GROUP)
        yield shop, bank


def _launch(
    apis: tuple[FakeBotApiClient, FakeBotApiClient],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> RunningBot:
    shop, bank = apis
    config = write_config(
        tmp_path, shop, bank, shop_mods=SHOP_MODS.id, bank_mods=BANK_MODS.id, cooldown_s=0
    )
    monkeypatch.setenv("AUTOREPLY_CONFIG", str(config))
    monkeypatch.setenv("AUTOREPLY_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SHOP_BOT_TOKEN", shop.token)
    monkeypatch.setenv("BANK_BOT_TOKEN", bank.token)
    settings = load_settings()
    return launch(settings, load_accounts(settings).all, None, [shop, bank])


@pytest.fixture
def bot(
    apis: tuple[FakeBotApiClient, FakeBotApiClient],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RunningBot]:
    running = _launch(apis, sqlite_url, tmp_path, monkeypatch)
    yield running
    if running.thread.is_alive():
        running.stop()


def _audit(bot: RunningBot) -> list[tuple[str, str, str]]:
    with bot.db.session() as s:
        rows = s.execute(
            select(m.Account.name, m.ModerationAction.action, m.ModerationAction.moderator)
            .join(m.Account, m.ModerationAction.account_id == m.Account.id)
            .order_by(m.ModerationAction.id)
        ).all()
    return [(name, action.value, who) for name, action, who in rows]


def test_each_account_answers_in_its_own_way_and_nothing_crosses(
    apis: tuple[FakeBotApiClient, FakeBotApiClient], bot: RunningBot
) -> None:
    shop, bank = apis
    asked_shop = shop.inject(f.group_mention(GROUP, CAROL, "do you have red shoes?"))["message"]
    bank.inject(f.group_mention(GROUP, CAROL, "what is my balance?"))

    (reply,) = shop.wait_for_calls(1, chat_id=GROUP.id)
    (card,) = bank.wait_for_calls(1, chat_id=BANK_MODS.id)
    bot.wait_until(lambda: bot.count(m.ReplyDraft) == 2, what="both drafts")

    assert reply.reply_to_message_id == asked_shop["message_id"]  # auto: answered at once
    assert "what is my balance?" in (card.text or "")  # review_all: a card, no reply
    assert bank.sent_messages(GROUP.id) == []
    assert shop.sent_messages(SHOP_MODS.id) == []  # the shop's moderators saw nothing
    assert "balance" not in " ".join(c.text or "" for c in shop.sent_messages())
    assert "red shoes" not in " ".join(c.text or "" for c in bank.sent_messages())
    with bot.db.session() as s:
        conversations = s.execute(
            select(m.Account.name, m.Conversation.chat_id).join(
                m.Account, m.Conversation.account_id == m.Account.id
            )
        ).all()
    # One chat id, two accounts: two conversations, each with its own history.
    assert sorted(tuple(c) for c in conversations if c[1] == str(GROUP.id)) == [
        ("bank", str(GROUP.id)),
        ("shop", str(GROUP.id)),
    ]
    assert bot.service.running is not None
    assert bot.service.running.health == {"shop": "ok", "bank": "ok"}


def test_a_moderator_of_one_account_cannot_act_on_the_other(
    apis: tuple[FakeBotApiClient, FakeBotApiClient], bot: RunningBot
) -> None:
    _, bank = apis
    bank.add_chat(f.FakeChat.private(SHOP_MOD))
    bank.inject(f.group_mention(GROUP, CAROL, "can I raise my card limit?"))
    (card,) = bank.wait_for_calls(1, chat_id=BANK_MODS.id)
    approve = card.callback_data[0]

    # The shop's moderator is in the bank's moderators' chat too, and presses Approve.
    bank.inject(
        f.callback_query(SHOP_MOD, approve, chat_id=BANK_MODS.id, message_id=card.message_id or 0)
    )
    bot.wait_until(lambda: len(bank.calls("answerCallbackQuery")) == 1, what="the refusal")
    assert bank.sent_messages(GROUP.id) == []
    assert _audit(bot) == [("bank", "refused", "@shopmod (7001)")]

    bank.inject(
        f.callback_query(BANK_MOD, approve, chat_id=BANK_MODS.id, message_id=card.message_id or 0)
    )
    (reply,) = bank.wait_for_calls(1, chat_id=GROUP.id)
    bot.stop()

    answers = [str(c.params.get("text", "")) for c in bank.calls("answerCallbackQuery")]
    assert answers[0] == "Only moderators can do this."
    assert "can I raise" not in (reply.text or "")
    assert _audit(bot) == [
        ("bank", "refused", "@shopmod (7001)"),
        ("bank", "approve", "@bankmod (7002)"),
    ]


def test_one_account_failing_does_not_stop_the_other(
    caplog: pytest.LogCaptureFixture,
    apis: tuple[FakeBotApiClient, FakeBotApiClient],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop, bank = apis
    # The bank's Bot API refuses the token once at start, and later drops the bot mid-run.
    bank.fail("getMe", 401, "Unauthorized", count=1)
    bot = _launch(apis, sqlite_url, tmp_path, monkeypatch)
    try:
        shop.inject(f.group_mention(GROUP, CAROL, "open on sunday?"))
        shop.wait_for_calls(1, chat_id=GROUP.id)  # the shop serves while the bank is down
        bank.inject(f.group_mention(GROUP, CAROL, "is the branch open?"))
        bank.wait_for_calls(1, chat_id=BANK_MODS.id, timeout=20)  # restarted, then served
        with bot.db.session() as s:
            health = dict(s.execute(select(m.Account.name, m.Account.health)).all())
        assert health == {"shop": "ok", "bank": "ok"}

        bank.fail("getUpdates", 401, "Unauthorized", count=1)  # a crash while running
        bot.wait_until(
            lambda: "account 'bank' failed" in caplog.text, what="the bank's channel to crash"
        )
        shop.inject(f.group_mention(GROUP, CAROL, "and on monday?"))
        shop.wait_for_calls(2, chat_id=GROUP.id)
        bank.inject(f.group_mention(GROUP, CAROL, "and tomorrow?"))
        bank.wait_for_calls(2, chat_id=BANK_MODS.id, timeout=20)
    finally:
        bot.stop()
    with bot.db.session() as s:
        health = dict(s.execute(select(m.Account.name, m.Account.health)).all())
    assert health == {"shop": "stopped", "bank": "stopped"}
    assert "account 'bank' could not start: Telegram refused the bot token" in caplog.text
