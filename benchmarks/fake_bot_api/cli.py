"""A fake Telegram Bot API server for tests: real python-telegram-bot talks HTTP to it.

The standalone entry point, ``python -m benchmarks.fake_bot_api --port 0``: it prints
``FAKE_BOT_API_READY <url>`` on stdout once it listens (what :class:`FakeBotApiProcess` waits
for) and serves until SIGTERM/SIGINT or ``/_control/shutdown``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from benchmarks.fake_bot_api.api import FakeBotApi
from benchmarks.fake_bot_api.server import READY_PREFIX, serve
from benchmarks.fake_bot_api.state import FakeBotApiConfig, FakeBotApiState


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = FakeBotApiConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=defaults.token)
    parser.add_argument("--bot-username", default=defaults.bot_username)
    parser.add_argument("--bot-first-name", default=defaults.bot_first_name)
    parser.add_argument("--first-update-id", type=int, default=defaults.first_update_id)
    parser.add_argument("--state-file", type=Path, default=None)
    parser.add_argument("--webhook-max-attempts", type=int, default=defaults.webhook_max_attempts)
    parser.add_argument("--webhook-retry-delay", type=float, default=defaults.webhook_retry_delay)
    parser.add_argument("--autosave-interval", type=float, default=defaults.autosave_interval)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT or ``/_control/shutdown``; prints the ready line on stdout."""
    args = _parse_args(argv)
    config = FakeBotApiConfig(
        token=args.token,
        bot_username=args.bot_username,
        bot_first_name=args.bot_first_name,
        first_update_id=args.first_update_id,
        state_file=args.state_file,
        webhook_max_attempts=args.webhook_max_attempts,
        webhook_retry_delay=args.webhook_retry_delay,
        autosave_interval=args.autosave_interval,
    )
    asyncio.run(_serve_standalone(config, args.host, args.port))
    return 0


async def _serve_standalone(config: FakeBotApiConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready(bound_port: int) -> None:
        print(f"{READY_PREFIX} http://{host}:{bound_port}", flush=True)

    api = FakeBotApi(config, FakeBotApiState.load_or_new(config))
    await serve(api, host=host, port=port, stop=stop, on_ready=ready)
