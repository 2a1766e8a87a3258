"""Fixtures for the Telegram channel: the fake Bot API in a thread, and the real service (real
PTB, real storage) running in its own event loop in a background thread, pointed at it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from benchmarks.fake_bot_api import FakeBotApiClient, FakeBotApiServer
from benchmarks.fake_bot_api import factories as f
from bot.accounts import Account, load_accounts
from bot.channels.telegram import TelegramChannel
from bot.config import Settings
from bot.domain import Mode
from bot.service import Service
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import CannedDrafter

MODS = f.FakeChat.supergroup(-1009000, "Moderators")
ALICE = f.FakeUser(1001, "Alice", "alice")
BOB = f.FakeUser(1002, "Bob", "bob")
MALLORY = f.FakeUser(1666, "Mallory", "mallory")
MODERATOR = f.FakeUser(2001, "Mo", "mo_the_mod")


@pytest.fixture
def fake_server() -> Iterator[FakeBotApiServer]:
    server = FakeBotApiServer().start()
    yield server
    server.stop()


@pytest.fixture
def api(fake_server: FakeBotApiServer) -> Iterator[FakeBotApiClient]:
    with fake_server.client() as client:
        yield client


@dataclass
class RunningBot:
    """The service in a background thread. `db` is a separate handle for assertions."""

    settings: Settings
    service: Service
    db: Database
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    stop_event: asyncio.Event
    errors: list[BaseException] = field(default_factory=list)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the service did not stop"
        self.db.dispose()
        if self.errors:
            raise self.errors[0]

    def call(self, coro_fn: Callable[[], Any], timeout: float = 30) -> Any:
        """Run a coroutine on the service's loop (e.g. a core method) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(timeout)

    def count(self, model: type[m.Base], *where: Any) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def wait_until(self, check: Callable[[], bool], timeout: float = 15, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or check}")


StartBot = Callable[..., RunningBot]


def launch(
    settings: Settings,
    accounts: Sequence[Account],
    drafter: Any,
    apis: Sequence[FakeBotApiClient],
) -> RunningBot:
    """Run the real service (one Telegram channel per account) in a background thread, and
    return once every account's channel polls its fake Bot API (or has set its webhook)."""
    channels = [TelegramChannel(account) for account in accounts]
    service = Service(settings, accounts, channels, drafter=drafter or CannedDrafter())
    ready = threading.Event()
    holder: dict[str, Any] = {}
    errors: list[BaseException] = []

    def main() -> None:
        async def run() -> None:
            holder["loop"] = asyncio.get_running_loop()
            holder["stop"] = asyncio.Event()
            ready.set()
            await service.run(holder["stop"])

        try:
            asyncio.run(run())
        except BaseException as exc:  # noqa: BLE001  (re-raised in the test by stop())
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=main, name="service", daemon=True)
    thread.start()
    ready.wait(30)
    bot = RunningBot(
        settings,
        service,
        Database(settings.database_url),
        thread,
        holder["loop"],
        holder["stop"],
        errors,
    )
    for api in apis:
        bot.wait_until(
            lambda api=api: (
                api.counters().get_updates_calls > 0  # type: ignore[misc]
                or bool(api.counters().webhook_url)
            ),
            what="the channel to start",
        )
    return bot


@pytest.fixture
def start_bot(api: FakeBotApiClient, sqlite_url: str) -> Iterator[StartBot]:
    running: list[RunningBot] = []

    api.add_chat(MODS)

    def start(drafter: Any = None, db_url: str | None = None, **overrides: Any) -> RunningBot:
        values: dict[str, Any] = {
            "database_url": db_url or sqlite_url,
            "mode": Mode.AUTO,
            "telegram_token": api.token,
            "telegram_base_url": api.bot_base_url,
            "telegram_moderator_chat_id": MODS.id,
            "telegram_moderator_ids": (MODERATOR.id,),
            "telegram_poll_timeout_s": 1,
            "telegram_user_cooldown_s": 0,
        }
        values.update(overrides)
        settings = Settings(**values)
        bot = launch(settings, load_accounts(settings).all, drafter, [api])
        running.append(bot)
        return bot

    yield start
    for bot in running:
        if bot.thread.is_alive():
            bot.stop()
