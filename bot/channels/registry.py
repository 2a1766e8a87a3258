"""Builds one channel per configured account. New platforms register a builder here."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from bot.accounts import Account
from bot.channels.base import Channel


@dataclass(frozen=True, slots=True)
class Terminal:
    """The process's stdin/stdout, for console accounts. Only one account can read them."""

    stdin: BinaryIO
    stdout: TextIO
    owned: bool  # this console account reads the input (the only account served)


Builder = Callable[[Account, Terminal], Channel]
_BUILDERS: dict[str, Builder] = {}


def register(platform: str, builder: Builder) -> None:
    """Add a platform. Refuses duplicates, so two modules cannot fight over one name."""
    if platform in _BUILDERS:
        raise ValueError(f"a channel for {platform!r} is already registered")
    _BUILDERS[platform] = builder


def platforms() -> tuple[str, ...]:
    return tuple(_BUILDERS)


def build_channels(
    accounts: Sequence[Account], *, stdin: BinaryIO, stdout: TextIO
) -> list[Channel]:
    """One channel per account. The first console account reads the terminal; any other
    console account is a write-only sink (replies approved later from the CLI are recorded as
    sent)."""
    owner = next((a.name for a in accounts if a.platform == "console"), None)
    return [
        _BUILDERS[account.platform](account, Terminal(stdin, stdout, owned=account.name == owner))
        for account in accounts
    ]


def _console(account: Account, terminal: Terminal) -> Channel:
    from bot.channels.console import ConsoleChannel

    if not terminal.owned:
        return ConsoleChannel(account=account.name)
    interactive = terminal.stdin.isatty() and terminal.stdout.isatty()
    return ConsoleChannel(
        account=account.name, source=terminal.stdin, out=terminal.stdout, interactive=interactive
    )


def _telegram(account: Account, terminal: Terminal) -> Channel:
    # PTB warns on every RetryAfter.retry_after access unless told to use timedeltas, which
    # our code handles; it reads this when imported.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    from bot.channels.telegram import TelegramChannel  # PTB loads only when configured

    return TelegramChannel(account)


register("console", _console)
register("telegram", _telegram)
