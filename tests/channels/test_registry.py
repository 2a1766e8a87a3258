"""One channel per account; only the first console account reads the terminal."""

from __future__ import annotations

import io
from dataclasses import replace

from pydantic import SecretStr

from bot.account_tables import TelegramSection
from bot.channels.console import ConsoleChannel
from bot.channels.registry import build_channels
from tests.fakes import account


def test_channels_per_account_and_one_terminal_owner() -> None:
    telegram = replace(
        account("shop", platform="telegram"),
        telegram=TelegramSection(token=SecretStr("111:secret")),
    )
    stdin, stdout = io.BytesIO(b"hi\n"), io.StringIO()
    (only,) = build_channels([telegram], stdin=stdin, stdout=stdout)
    assert (only.platform, only.account) == ("telegram", "shop")

    channels = build_channels(
        [telegram, account("local"), account("spare")], stdin=stdin, stdout=stdout
    )
    assert [c.account for c in channels] == ["shop", "local", "spare"]
    local, spare = channels[1], channels[2]
    assert isinstance(local, ConsoleChannel) and isinstance(spare, ConsoleChannel)
    assert local._source is stdin and spare._source is None  # the second one is a sink
