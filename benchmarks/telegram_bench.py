"""Telegram delivery under stress, against the fake Bot API (benchmarks.fake_bot_api).

Two scenarios, each measured side by side with its own baseline in one run:

1. kill: N group mentions over C chats; the bot (`autoreply run` subprocess) is SIGKILLed
   when about a third is answered, then restarted. Reports duplicates, out-of-order chats,
   unanswered messages and replies in doubt. Baseline: the same stream with no kill.
2. 429: one chat answers 429 with retry_after=R on its first reply. Reports how much later
   the other chats' replies came than in a baseline run without the 429.

Run: `python -m benchmarks.telegram_bench` (or `autoreply bench telegram`). Uses the tiny
offline model of `benchmarks.tiny_model` (the tests' model too) unless --model is given.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from benchmarks.fake_bot_api import FakeBotApiClient, FakeBotApiServer
from benchmarks.fake_bot_api import factories as f


def _env(api: FakeBotApiClient, db_file: Path, model: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AUTOREPLY_DATABASE_URL": f"sqlite:///{db_file}",
        "AUTOREPLY_MODEL": model,
        "AUTOREPLY_MODE": "auto",
        "AUTOREPLY_SEED": "0",
        "AUTOREPLY_TELEGRAM_TOKEN": api.token,
        "AUTOREPLY_TELEGRAM_BASE_URL": api.bot_base_url,
        "AUTOREPLY_TELEGRAM_MODERATOR_CHAT_ID": "-1009000",
        "AUTOREPLY_TELEGRAM_POLL_TIMEOUT_S": "1",
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=log.parent,  # no stray autoreply.toml
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _unfinished(db_file: Path) -> int:
    if not db_file.exists():
        return 1
    with sqlite3.connect(db_file) as con:
        try:
            row = con.execute(
                "select (select count(*) from messages where direction = 'in' and "
                "handled_at is null) + (select count(*) from outbox where status in "
                "('pending', 'sending'))"
            ).fetchone()
        except sqlite3.OperationalError:  # schema not there yet
            return 1
    return int(row[0])


def in_doubt(db_file: Path, account: str | None = None) -> set[tuple[int, int]]:
    """(chat id, message id) of the messages whose reply or card is in doubt (`unknown`):
    in flight at the kill. Message ids are per chat on Telegram, hence the pairs."""
    query = (
        "select c.chat_id, m.platform_message_id from outbox o "
        "join reply_drafts d on d.id = o.draft_id join messages m on m.id = d.message_id "
        "join conversations c on c.id = m.conversation_id "
        "join accounts a on a.id = o.account_id where o.status = 'unknown'"
    )
    with sqlite3.connect(db_file) as con:
        if account is None:
            rows = con.execute(query).fetchall()
        else:
            rows = con.execute(query + " and a.name = ?", (account,)).fetchall()
    return {(int(chat), int(message)) for chat, message in rows}


def kill_scenario(model: str, messages: int, chats: int, kill: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, FakeBotApiServer() as server, server.client() as api:
        api.add_chat(f.FakeChat.supergroup(-1009000, "Moderators"))
        groups = [f.FakeChat.supergroup(-100800 - i, f"group {i}") for i in range(chats)]
        for g in groups:
            api.add_chat(g)
        asked: dict[int, list[int]] = defaultdict(list)
        texts: dict[tuple[int, int], str] = {}  # (chat, message id) -> text, found on cards
        for n in range(messages):
            g = groups[n % chats]
            user = f.FakeUser(20_000 + n, f"user{n}")
            msg = api.inject(f.group_mention(g, user, f"question {n}: when do you open?"))
            asked[g.id].append(msg["message"]["message_id"])
            texts[g.id, msg["message"]["message_id"]] = msg["message"]["text"]
        db_file, log = Path(tmp) / "bot.db", Path(tmp) / "bot.log"
        env = _env(api, db_file, model)
        started = time.monotonic()
        proc = _spawn(env, log)
        bar = tqdm(
            total=messages,
            desc=f"{'kill' if kill else 'baseline'} run",
            unit="msg",
            mininterval=1.0,
        )

        def answered() -> int:  # replies and moderators' cards alike
            bar.n = len(api.sent_messages())
            bar.refresh()
            return int(bar.n)

        if kill:
            _wait(lambda: answered() >= messages // 3, 600, "a third of the replies")
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            proc = _spawn(env, log)
        try:
            _wait(
                lambda: (
                    answered() > 0
                    and _unfinished(db_file) == 0
                    and api.counters().pending_updates == 0
                ),
                1200,
                "every message to be handled",
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            bar.close()
        wall = time.monotonic() - started
        cards = [c.text or "" for c in api.sent_messages(-1009000)]
        unknown = in_doubt(db_file)
        duplicates = out_of_order = unanswered = 0
        for g in groups:
            replies = [c.reply_to_message_id for c in api.sent_messages(g.id)]
            duplicates += len(replies) - len(set(replies))
            out_of_order += int(replies != sorted(r for r in replies if r is not None))
            for message_id in asked[g.id]:
                carded = any(texts[g.id, message_id] in c for c in cards)
                doubt = (g.id, message_id) in unknown
                if message_id not in replies and not doubt and not carded:
                    unanswered += 1
        return {
            "wall_s": wall,
            "replies": sum(len(api.sent_messages(g.id)) for g in groups),
            "cards": len(cards),
            "duplicates": duplicates,
            "chats_out_of_order": out_of_order,
            "unanswered": unanswered,
            "unknown": len(unknown),
            "tracebacks": log.read_text(errors="replace").count("Traceback"),
        }


def rate_limit_scenario(
    model: str, chats: int, retry_after: int, limited: bool
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, FakeBotApiServer() as server, server.client() as api:
        groups = [f.FakeChat.supergroup(-100900 - i, f"group {i}") for i in range(chats)]
        for g in groups:
            api.add_chat(g)
        if limited:
            api.rate_limit(groups[0].id, retry_after=retry_after, count=1)
        db_file, log = Path(tmp) / "bot.db", Path(tmp) / "bot.log"
        proc = _spawn(_env(api, db_file, model, AUTOREPLY_TELEGRAM_USER_COOLDOWN_S="0"), log)
        try:
            _wait(lambda: api.counters().get_updates_calls > 0, 120, "the bot to start")
            injected = time.monotonic()
            for i, g in enumerate(groups):
                api.inject(f.group_mention(g, f.FakeUser(30_000 + i, f"u{i}"), "open today?"))
            _wait(lambda: all(api.sent_messages(g.id) for g in groups), 120, "every reply")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        others = [api.sent_messages(g.id)[0].received_at - injected for g in groups[1:]]
        first = api.sent_messages(groups[0].id)[0].received_at - injected
        return {
            "others_median_s": statistics.median(others),
            "others_max_s": max(others),
            "limited_chat_s": first,
            "dropped": sum(1 for g in groups if not api.sent_messages(g.id)),
        }


def table(title: str, rows: dict[str, dict[str, float]]) -> str:
    """Figures side by side, one column per run; a figure a run lacks is left blank."""
    keys = list(dict.fromkeys(key for row in rows.values() for key in row))
    width = max(len(k) for k in keys)
    column = max(12, *(len(name) for name in rows))
    lines = [title, f"{'':<{width}}  " + "  ".join(f"{name:>{column}}" for name in rows)]
    for key in keys:
        cells = "  ".join(
            f"{rows[name][key]:>{column}.2f}" if key in rows[name] else " " * column
            for name in rows
        )
        lines.append(f"{key:<{width}}  {cells}")
    return "\n".join(lines)


def run(model: str | None = None, messages: int = 1000, chats: int = 50) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            from benchmarks.tiny_model import build_tiny_model  # torch: only when needed

            model = str(build_tiny_model(Path(tmp) / "tiny"))
        kill = {
            "baseline": kill_scenario(model, messages, chats, kill=False),
            "SIGKILL": kill_scenario(model, messages, chats, kill=True),
        }
        limit = {
            "baseline": rate_limit_scenario(model, 20, 5, limited=False),
            "429 x 5 s": rate_limit_scenario(model, 20, 5, limited=True),
        }
    report = "\n\n".join(
        [
            table(f"{messages} mentions over {chats} chats, bot killed mid-stream:", kill),
            table("20 chats, 429 retry_after=5 s on one chat (seconds after injection):", limit),
        ]
    )
    print(report)
    return report


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--chats", type=int, default=50)
    args = parser.parse_args()
    run(args.model, args.messages, args.chats)
