"""A bot process SIGKILLed in the middle of a stream and restarted: nothing is answered twice,
everything is answered (or listed as in doubt), and each chat's replies keep their order.

It runs the Telegram benchmark's kill scenario at a smaller size: a real `autoreply run`
subprocess with the tiny model, against the fake Bot API, which keeps its state across the
restart. The full size (1,000 mentions over 50 chats) is `autoreply bench telegram`.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.telegram_bench import kill_scenario


def test_killed_mid_stream_then_restarted(tiny_model_dir: Path) -> None:
    result = kill_scenario(str(tiny_model_dir), messages=200, chats=20, kill=True)
    assert result["replies"] + result["cards"] >= 200 - result["unknown"]
    assert result["duplicates"] == 0, result
    assert result["chats_out_of_order"] == 0, result
    assert result["unanswered"] == 0, result
    assert result["unknown"] <= 5, result  # only what was in flight at the kill
    assert result["tracebacks"] == 0, result
