"""Two Telegram accounts in one `autoreply run` process, killed mid-stream and restarted.

Account `shop` answers on its own (mode auto); account `bank` queues every draft for its
moderators (mode review_all). Each has its own bot token (read through `token_env`), its own
Bot API server (a fake each, with the same group chat ids on both, so a mix-up would show) and
its own moderators' chat (private, see SHOP_MODS). N mentions are spread over both; the
process is SIGKILLed when about a third is answered, then started again.

Reported per account: replies (shop) or cards (bank), messages answered twice, chats out of
order, messages not answered and not listed as in doubt, and anything that crossed to the
other account. Then `autoreply queue list --account bank` and `autoreply accounts list` are
run against the same database, as an operator would.

Run: `python -m benchmarks.accounts_bench` (or `autoreply bench accounts`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from benchmarks.fake_bot_api import FakeBotApiClient, FakeBotApiServer
from benchmarks.fake_bot_api import factories as f
from benchmarks.fake_bot_api.state import FakeBotApiConfig
from benchmarks.telegram_bench import _unfinished, _wait, in_doubt, table

SHOP_MODERATOR, BANK_MODERATOR = 7001, 7002
# Each moderators' chat is a private chat with one moderator: Telegram paces a group at 20
# messages a minute, so 200 cards in a group would take ten minutes by themselves.
SHOP_MODS, BANK_MODS = SHOP_MODERATOR, BANK_MODERATOR

CONFIG = """
[[accounts]]
name = "shop"
platform = "telegram"
mode = "auto"
persona = "You answer for a shoe shop."
user_cooldown_s = {cooldown_s}

[accounts.telegram]
token_env = "SHOP_BOT_TOKEN"
base_url = "{shop_url}"
moderator_chat_id = {shop_mods}
moderator_ids = [{shop_moderator}]
poll_timeout_s = 1

[[accounts]]
name = "bank"
platform = "telegram"
mode = "review_all"
persona = "You answer for a bank."
user_cooldown_s = {cooldown_s}

[accounts.telegram]
token_env = "BANK_BOT_TOKEN"
base_url = "{bank_url}"
moderator_chat_id = {bank_mods}
moderator_ids = [{bank_moderator}]
poll_timeout_s = 1
"""


@dataclass
class Side:
    """One account's fake Bot API and what was asked of it."""

    name: str
    api: FakeBotApiClient
    mods: int
    asked: dict[int, list[int]]  # chat id -> message ids, in order
    texts: dict[tuple[int, int], str]  # (chat id, message id) -> text, found quoted on cards


def write_config(
    folder: Path,
    shop: FakeBotApiClient,
    bank: FakeBotApiClient,
    *,
    shop_mods: int = SHOP_MODS,
    bank_mods: int = BANK_MODS,
    cooldown_s: float = 5.0,
) -> Path:
    """autoreply.toml for the two accounts, as an operator would write it."""
    path = folder / "autoreply.toml"
    path.write_text(
        CONFIG.format(
            shop_url=shop.bot_base_url,
            bank_url=bank.bot_base_url,
            shop_mods=shop_mods,
            bank_mods=bank_mods,
            shop_moderator=SHOP_MODERATOR,
            bank_moderator=BANK_MODERATOR,
            cooldown_s=cooldown_s,
        )
    )
    return path


def environment(
    folder: Path, model: str, shop: FakeBotApiClient, bank: FakeBotApiClient
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREPLY_")}
    return {
        **env,
        "AUTOREPLY_CONFIG": str(write_config(folder, shop, bank)),
        "AUTOREPLY_DATABASE_URL": f"sqlite:///{folder / 'bot.db'}",
        "AUTOREPLY_MODEL": model,
        "AUTOREPLY_SEED": "0",
        "SHOP_BOT_TOKEN": shop.token,
        "BANK_BOT_TOKEN": bank.token,
        "HF_HUB_OFFLINE": "1",
    }


def _spawn(env: dict[str, str], folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=(folder / "bot.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def cli(env: dict[str, str], folder: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"autoreply {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _inject(side: Side, groups: list[f.FakeChat], n: int) -> None:
    group = groups[n % len(groups)]
    user = f.FakeUser(20_000 + n, f"user{n}")
    text = f"{side.name} question {n}: when do you open?"
    message = side.api.inject(f.group_mention(group, user, text))["message"]
    side.asked.setdefault(group.id, []).append(message["message_id"])
    side.texts[group.id, message["message_id"]] = text


def _score(side: Side, other: Side, folder: Path, groups: list[f.FakeChat]) -> dict[str, float]:
    to_moderators = [c.text or "" for c in side.api.sent_messages(side.mods)]
    # Draft cards, and notices about replies in doubt (bot/storage/outbox_store.py).
    cards = [text for text in to_moderators if text.startswith("Draft #")]
    unknown = in_doubt(folder / "bot.db", side.name)
    duplicates = out_of_order = unanswered = 0
    replies = 0
    for group in groups:
        replied = [c.reply_to_message_id for c in side.api.sent_messages(group.id)]
        replies += len(replied)
        duplicates += len(replied) - len(set(replied))
        out_of_order += int(replied != sorted(r for r in replied if r is not None))
        for message_id in side.asked.get(group.id, []):
            carded = any(side.texts[group.id, message_id] in card for card in cards)
            doubt = (group.id, message_id) in unknown
            if message_id not in replied and not doubt and not carded:
                unanswered += 1
    quoted = Counter(text for text in side.texts.values() for card in cards if text in card)
    crossed = sum(1 for text in to_moderators if f"{other.name} question" in text)
    return {
        "replies": replies,
        "cards": len(cards),
        "in_doubt_notices": len(to_moderators) - len(cards),
        "answered_twice": duplicates + sum(n - 1 for n in quoted.values() if n > 1),
        "chats_out_of_order": out_of_order,
        "unanswered": unanswered,
        "unknown": len(unknown),
        "crossed_accounts": crossed,
    }


def two_accounts_scenario(
    model: str, messages: int = 400, chats: int = 10, kill: bool = True
) -> dict[str, dict[str, float]]:
    """Run the scenario; returns a table of figures per account (and the process)."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        servers = [
            stack.enter_context(FakeBotApiServer(FakeBotApiConfig(token=token)))
            for token in ("111111:shop-token", "222222:bank-token")
        ]
        shop_api, bank_api = (stack.enter_context(s.client()) for s in servers)
        shop = Side("shop", shop_api, SHOP_MODS, {}, {})
        bank = Side("bank", bank_api, BANK_MODS, {}, {})
        groups = [f.FakeChat.supergroup(-100800 - i, f"group {i}") for i in range(chats)]
        for side in (shop, bank):
            side.api.add_chat(f.FakeChat.private(f.FakeUser(side.mods, "Mod", f"{side.name}mod")))
            for group in groups:  # the same chat ids on both bots
                side.api.add_chat(group)
        for n in range(messages):
            _inject(shop if n % 2 == 0 else bank, groups, n)
        env = environment(folder, model, shop_api, bank_api)
        started = time.monotonic()
        proc = _spawn(env, folder)
        bar = tqdm(total=messages, desc="two accounts", unit="msg", mininterval=1.0)

        def answered() -> int:
            if proc.poll() is not None:  # fail now, not when the wait runs out
                log = (folder / "bot.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the bot exited with code {proc.returncode}:\n{log}")
            bar.n = len(shop_api.sent_messages()) + len(bank_api.sent_messages())
            bar.refresh()
            return int(bar.n)

        try:
            if kill:
                _wait(lambda: answered() >= messages // 3, 600, "a third of the replies")
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                proc = _spawn(env, folder)
            _wait(
                lambda: (
                    answered() > 0
                    and _unfinished(folder / "bot.db") == 0
                    and shop_api.counters().pending_updates == 0
                    and bank_api.counters().pending_updates == 0
                ),
                1200,
                "every message to be handled",
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            bar.close()
        wall = time.monotonic() - started
        table = {
            "shop (auto)": _score(shop, bank, folder, groups),
            "bank (review_all)": _score(bank, shop, folder, groups),
        }
        queued = [
            json.loads(line)
            for line in cli(
                env, folder, "queue", "list", "--account", "bank", "--json", "--limit", "1000"
            ).splitlines()
        ]
        listed = {
            row["name"]: row
            for row in map(json.loads, cli(env, folder, "accounts", "list", "--json").splitlines())
        }
        table["shop (auto)"]["queue_list_rows"] = len(
            cli(env, folder, "queue", "list", "--account", "shop", "--json").splitlines()
        )
        table["bank (review_all)"]["queue_list_rows"] = len(queued)
        table["bank (review_all)"]["queue_list_other_account"] = sum(
            1 for item in queued if item["account"] != "bank"
        )
        for name, key in (("shop", "shop (auto)"), ("bank", "bank (review_all)")):
            table[key]["accounts_list_queued"] = listed[name]["queued"]
        log = (folder / "bot.log").read_text(errors="replace")
        table["process"] = {"wall_s": wall, "tracebacks": log.count("Traceback")}
        return table


def run(model: str | None = None, messages: int = 400, chats: int = 10) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            from benchmarks.tiny_model import build_tiny_model  # torch: only when needed

            model = str(build_tiny_model(Path(tmp) / "tiny"))
        report = table(
            f"{messages} mentions over two accounts x {chats} chats, killed mid-stream:",
            two_accounts_scenario(model, messages, chats),
        )
    print(report)
    return report


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--chats", type=int, default=10)
    args = parser.parse_args()
    run(args.model, args.messages, args.chats)
