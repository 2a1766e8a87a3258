"""Builds the channels that settings ask for. New platforms register a builder here."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO, TextIO

from bot.channels.base import Channel
from bot.config import Settings

Builder = Callable[[Settings], Channel | None]
_BUILDERS: dict[str, Builder] = {}


def register(platform: str, builder: Builder) -> None:
    """Add a platform. The builder returns None when the settings don't configure it."""
    if platform in _BUILDERS:
        raise ValueError(f"a channel for {platform!r} is already registered")
    _BUILDERS[platform] = builder


def build_channels(settings: Settings, *, stdin: BinaryIO, stdout: TextIO) -> list[Channel]:
    """Every configured platform; the console when none is, so a fresh install still chats."""
    channels = [c for c in (build(settings) for build in _BUILDERS.values()) if c is not None]
    if channels:
        return channels
    from bot.channels.console import ConsoleChannel

    interactive = stdin.isatty() and stdout.isatty()
    return [
        ConsoleChannel(account=settings.account, source=stdin, out=stdout, interactive=interactive)
    ]


def _telegram(settings: Settings) -> Channel | None:
    if settings.telegram_token is None:
        return None
    # PTB warns on every RetryAfter.retry_after access unless told to use timedeltas, which
    # our code handles; it reads this when imported.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    from bot.channels.telegram import TelegramChannel  # PTB loads only when configured

    return TelegramChannel(settings)


register("telegram", _telegram)
