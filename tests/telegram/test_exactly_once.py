"""A bot process SIGKILLed in the middle of a stream and restarted: nothing is answered twice,
everything is answered (or listed as in doubt), and each chat's replies keep their order.

It runs the Telegram benchmark's kill scenario at a smaller size: a real `autoreply run`
subprocess with the tiny model, against the fake Bot API, which keeps its state across the
restart. The full size (1,000 mentions over 50 chats) is `autoreply bench telegram`; two
accounts in one process (400 mentions) is `autoreply bench accounts`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.accounts_bench import two_accounts_scenario
from benchmarks.telegram_bench import kill_scenario


def test_killed_mid_stream_then_restarted(tiny_model_dir: Path) -> None:
    result = kill_scenario(str(tiny_model_dir), messages=200, chats=20, kill=True)
    assert result["replies"] + result["cards"] >= 200 - result["unknown"]
    assert result["duplicates"] == 0, result
    assert result["chats_out_of_order"] == 0, result
    assert result["unanswered"] == 0, result
    # Only what was in flight at the kill: at most one send per chat, the moderators' chat
    # included (the outbox sends a chat's rows one at a time). Batched drafting finishes many
    # chats' replies at once, so several chats can be mid-send together.
    assert result["unknown"] <= 20 + 1, result
    assert result["tracebacks"] == 0, result


def _check_two_accounts(table: dict[str, dict[str, float]], messages: int) -> None:
    shop, bank = table["shop (auto)"], table["bank (review_all)"]
    for side in (shop, bank):
        assert side["answered_twice"] == 0, table
        assert side["chats_out_of_order"] == 0, table
        assert side["unanswered"] == 0, table
        assert side["crossed_accounts"] == 0, table
        assert side["unknown"] <= 5, table  # only what was in flight at the kill
    assert shop["replies"] + shop["cards"] >= messages // 2 - shop["unknown"]
    assert bank["replies"] == 0 and bank["cards"] >= messages // 2 - bank["unknown"]
    # The operator's views agree with what happened.
    assert bank["queue_list_rows"] == bank["accounts_list_queued"] >= bank["cards"]
    assert bank["queue_list_other_account"] == 0
    assert shop["queue_list_rows"] == shop["accounts_list_queued"] >= shop["cards"]
    # Moderators hear about every reply in doubt (a card in doubt stays in the queue).
    assert shop["in_doubt_notices"] <= shop["unknown"]
    assert table["process"]["tracebacks"] == 0, table


def test_two_accounts_killed_mid_stream_then_restarted(tiny_model_dir: Path) -> None:
    table = two_accounts_scenario(str(tiny_model_dir), messages=80, chats=4)
    _check_two_accounts(table, 80)


@pytest.mark.slow
def test_two_accounts_400_mentions_killed_mid_stream(tiny_model_dir: Path) -> None:
    table = two_accounts_scenario(str(tiny_model_dir), messages=400, chats=10)
    _check_two_accounts(table, 400)
