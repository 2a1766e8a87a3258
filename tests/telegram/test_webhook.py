"""Webhook mode: the endpoint commits before it answers, and refuses wrong secrets."""

from __future__ import annotations

import json
import socket

from benchmarks.fake_bot_api import FakeBotApiClient
from benchmarks.fake_bot_api import factories as f
from bot.storage import models as m
from tests.telegram.conftest import BOB, StartBot

GROUP = f.FakeChat.supergroup(-100555, "Hooked")
SECRET = "s3cret_Token-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_webhook_answers_and_refuses_bad_secrets(
    api: FakeBotApiClient, start_bot: StartBot
) -> None:
    api.add_chat(GROUP)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/tg-hook"
    bot = start_bot(
        telegram_webhook_url=url,
        telegram_webhook_port=port,
        telegram_webhook_secret=SECRET,
        telegram_webhook_max_body=64 * 1024,
    )
    bot.wait_until(lambda: api.webhook().get("url") == url, what="setWebhook")
    asked = api.inject(f.group_mention(GROUP, BOB, "is the shop open?"))["message"]
    (reply,) = api.wait_for_calls(1, chat_id=GROUP.id, timeout=15)
    assert reply.reply_to_message_id == asked["message_id"]
    assert all(d["status"] == 200 for d in api.webhook_deliveries())

    inbound = m.Message.direction == m.Direction.INBOUND
    stored = bot.count(m.Message, inbound)
    forged = {"update_id": 999999, **f.group_mention(GROUP, BOB, "forged")}
    assert api.push_raw(forged, secret="wrong").status == 403
    assert api.push_raw(forged, secret=None).status == 403
    assert api.push_raw(forged, secret=SECRET, content_type="text/plain").status == 415
    huge = {"update_id": 1000000, **f.group_mention(GROUP, BOB, "x" * 100_000)}
    assert api.push_raw(json.dumps(huge), secret=SECRET).status == 413
    assert bot.count(m.Message, inbound) == stored
    assert bot.count(m.ProcessedUpdate, m.ProcessedUpdate.update_id >= 999999) == 0
    bot.stop()
