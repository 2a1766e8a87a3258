"""The Telegram channel's give-up path: an update that keeps failing is skipped and logged by
its ids, never with its text (the text goes to DEBUG only)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from telegram import Update

from benchmarks.fake_bot_api import FakeBotApiClient
from benchmarks.fake_bot_api import factories as f
from bot.accounts import load_accounts
from bot.channels.telegram import MAX_UPDATE_FAILURES, TelegramChannel
from bot.config import Settings
from bot.core import Core
from bot.domain import Decision, Incoming
from tests.telegram.conftest import ALICE

MARKER = "qzvmarker"


class BrokenCore(Core):
    """A core whose storing fails every time, and not because of the database: the channel
    must give the update up after MAX_UPDATE_FAILURES tries. Nothing else is called."""

    def __init__(self) -> None:
        self.calls = 0

    async def accept(self, incoming: Incoming) -> Decision | None:
        self.calls += 1
        raise RuntimeError(f"handler bug #{self.calls}")


def test_a_skipped_update_is_logged_without_its_text(
    api: FakeBotApiClient, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        database_url=sqlite_url,
        telegram_token=api.token,
        telegram_base_url=api.bot_base_url,
        telegram_poll_timeout_s=1,
    )
    channel = TelegramChannel(load_accounts(settings).default)
    core = BrokenCore()
    message = f.message_json(f.FakeChat.private(ALICE), ALICE, f"{MARKER} my address is")

    async def go() -> list[bool]:
        await channel.start(core)
        try:
            update = Update.de_json(
                {"update_id": 4242, "message": {**message, "message_id": 7, "date": 1_800_000_000}},
                channel._app.bot,
            )
            return [await channel._take_or_give_up(update) for _ in range(MAX_UPDATE_FAILURES)]
        finally:
            await channel.stop()
            await channel.close()

    moved_on = asyncio.run(go())

    assert moved_on == [False] * (MAX_UPDATE_FAILURES - 1) + [True]
    assert core.calls == MAX_UPDATE_FAILURES
    (gave_up,) = [r for r in caplog.records if "giving up on update 4242" in r.getMessage()]
    assert gave_up.levelno == logging.ERROR
    assert f"chat {ALICE.id}, message 7" in gave_up.getMessage()
    formatter = logging.Formatter("%(message)s")
    loud = [formatter.format(r) for r in caplog.records if r.levelno >= logging.INFO]
    assert not [line for line in loud if MARKER in line]
    quiet = [formatter.format(r) for r in caplog.records if r.levelno < logging.INFO]
    assert any(MARKER in line for line in quiet)  # kept for whoever debugs, at DEBUG
