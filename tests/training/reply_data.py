"""Shared set-up of the reply and preference training tests: data files, settings, database."""

from __future__ import annotations

import json
from pathlib import Path

from bot.config import Settings
from bot.storage import accounts as account_store
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema

# Lines of the tiny model's tokenizer corpus, so they tokenize compactly.
EXCHANGES = [
    ("hi", "Hello! What can I do for you?"),
    ("where is my refund?", "Refunds take three to five business days."),
    ("Do you ship to Canada and Mexico?", "Yes, we ship to most countries in North America."),
    ("Can I return these shoes if they do not fit?", "Of course, returns are free."),
    ("The app keeps crashing when I open my account.", "Sorry about that! Please update."),
    ("What are your opening hours on Sunday?", "We are open from ten until six."),
    ("My package arrived damaged, what should I do?", "Please send us a photo."),
    ("Is the blue jacket still available in medium?", "Let me check the stock for you."),
    ("I love your new summer collection!", "Thank you so much, we are glad you like it."),
    ("Can you help me? I forgot my password.", "Click on forgot password and follow the email."),
]


def write_sft(path: Path, conversations: int = 16) -> Path:
    """`conversations` SFT rows of one or two exchanges each."""
    lines = []
    for i in range(conversations):
        first = EXCHANGES[i % len(EXCHANGES)]
        second = EXCHANGES[(i * 3 + 1) % len(EXCHANGES)]
        messages = [
            {"role": "user", "text": first[0]},
            {"role": "bot", "text": first[1], "target": i % 2 == 0},
            {"role": "user", "text": f"{second[0]} ({i})"},
            {"role": "bot", "text": second[1]},
        ]
        lines.append(json.dumps({"account": "default", "messages": messages, "source": "test"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_preferences(path: Path, pairs: int) -> Path:
    lines = []
    for i in range(pairs):
        text, good = EXCHANGES[i % len(EXCHANGES)]
        row = {
            "messages": [{"role": "user", "text": f"{text} ({i})"}],
            "chosen": good,
            "rejected": "no",
            "kind": "edit",
        }
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_settings(tmp_path: Path, model_dir: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "model": str(model_dir),
        "device": "cpu",
        "database_url": f"sqlite:///{tmp_path / 'autoreply.db'}",
        "adapters_dir": tmp_path / "adapters",
        "exports_dir": tmp_path / "exports",
        "history_turns": 4,
        "max_new_tokens": 16,
        "persona": "You are a helpful shop assistant.",
    }
    return Settings(**(values | changes))  # type: ignore[arg-type]


def make_db(settings: Settings, account: str = "default") -> Database:
    ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    with db.session() as s:
        account_store.bind(s, account, "console", account)
    return db
