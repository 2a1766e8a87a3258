"""The bot token never reaches the logs, even at DEBUG (httpx logs request URLs, which carry
the token, and PTB logs request details)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.fake_bot_api import FakeBotApiClient
from benchmarks.fake_bot_api import factories as f
from tests.telegram.conftest import ALICE


def test_token_is_never_logged(api: FakeBotApiClient, tmp_path: Path) -> None:
    api.add_chat(f.FakeChat.private(ALICE))
    env = {
        **os.environ,
        "AUTOREPLY_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "AUTOREPLY_MODE": "off",  # no model needed: the point is the HTTP traffic
        "AUTOREPLY_LOG_LEVEL": "DEBUG",
        "AUTOREPLY_TELEGRAM_TOKEN": api.token,
        "AUTOREPLY_TELEGRAM_BASE_URL": api.bot_base_url,
        "AUTOREPLY_TELEGRAM_POLL_TIMEOUT_S": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        api.inject(f.command(f.FakeChat.private(ALICE), ALICE, "id"))
        api.wait_for_calls(1, chat_id=ALICE.id, timeout=60)
        time.sleep(1.5)  # a few more long polls
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    text = output.decode(errors="replace")
    assert "getUpdates" in text or "telegram" in text  # the log did cover the traffic
    secret = api.token.split(":", 1)[1]
    assert secret not in text
    assert proc.returncode == 0, text[-2000:]
