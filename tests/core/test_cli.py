"""The `autoreply` command as a user runs it: real subprocesses, a real SQLite file, the tiny
model loaded through the same code path as a user's model directory."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path, tiny_model_dir: Path) -> Run:
    db_file = tmp_path / "autoreply.db"
    base_env = {
        **os.environ,
        "AUTOREPLY_DATABASE_URL": f"sqlite:///{db_file}",
        "AUTOREPLY_MODEL": str(tiny_model_dir),
        "AUTOREPLY_SEED": "0",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
    }

    def run(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**base_env, **env},
            cwd=tmp_path,
            timeout=180,
        )

    run.db_file = db_file  # type: ignore[attr-defined]
    return run


def _rows(db_file: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_file) as con:
        return con.execute(sql).fetchall()


def test_chat_answers_every_line_and_stores_every_turn(cli: Run) -> None:
    result = cli("chat", stdin="hello there\nwhere is my order #1234?\n", AUTOREPLY_MODE="auto")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert not any(line.startswith("[") for line in lines), lines
    db_file = cli.db_file  # type: ignore[attr-defined]
    rows = _rows(db_file, "select direction, count(*) from messages group by direction")
    counts = {str(direction): n for direction, n in rows}
    assert counts == {"in": 2, "out": 2}
    unanalysed = _rows(
        db_file,
        "select m.id from messages m left join analyses a on a.message_id = m.id "
        "where m.direction = 'in' and a.id is null",
    )
    assert unanalysed == []
    assert _rows(db_file, "select count(*) from reply_drafts where status = 'sent'") == [(2,)]


def test_review_queue_round_trip(cli: Run) -> None:
    chat = cli("chat", stdin="hi\nmy parcel never arrived\n\n", AUTOREPLY_MODE="review_all")
    assert chat.returncode == 0, chat.stderr
    lines = chat.stdout.splitlines()
    assert [line.split("]")[0] + "]" for line in lines[:2]] == ["[queued for review]"] * 2
    assert lines[2] == "[ignored: no text to answer]"

    listed = cli("queue", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    items = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [i["message_text"] for i in items] == ["hi", "my parcel never arrived"]
    first, second = items[0]["draft_id"], items[1]["draft_id"]

    approved = cli("queue", "approve", str(first), "--by", "alice")
    assert approved.returncode == 0, approved.stderr
    assert f"draft #{first} approved" in approved.stdout

    again = cli("queue", "approve", str(first))
    assert again.returncode == 1
    assert "already sent" in again.stderr and "Traceback" not in again.stderr

    edited = cli("queue", "edit", str(second), "So sorry! DM us your order number.", "--by", "bob")
    assert edited.returncode == 0, edited.stderr
    shown = cli("queue", "show", str(second))
    assert "bob edit" in shown.stdout and "So sorry! DM us your order number." in shown.stdout

    db_file = cli.db_file  # type: ignore[attr-defined]
    outbound = _rows(db_file, "select text from messages where direction = 'out' order by id")
    assert outbound[1] == ("So sorry! DM us your order number.",)
    audit = _rows(db_file, "select moderator, action from moderation_actions order by id")
    assert audit == [("alice", "approve"), ("bob", "edit")]
    assert cli("queue", "list").stdout.strip() == "the queue is empty"

    missing = cli("queue", "reject", "999")
    assert missing.returncode == 1 and "no draft #999" in missing.stderr


def test_queue_show_lists_best_of_n_candidates(cli: Run) -> None:
    chat = cli("chat", stdin="where is my order?\n", AUTOREPLY_MODE="review_all")
    assert chat.returncode == 0, chat.stderr
    assert "candidates:" not in cli("queue", "show", "1").stdout  # one sample: no table
    db_file = cli.db_file  # type: ignore[attr-defined]
    # The candidates as the best-of-n pipeline stores them with the draft, best first.
    with sqlite3.connect(db_file) as con:
        con.execute("delete from draft_candidates")
        con.executemany(
            "insert into draft_candidates (draft_id, rank, text, raw_text, score, new_tokens, "
            "dropped) values (1, ?, ?, ?, ?, ?, ?)",
            [
                (0, "It ships today!", " It ships today!", -0.714, 5, None),
                (1, "It ships soon, " + "really " * 20, "x", -1.2, 30, "outranked"),
                (2, "ok ok ok ok", " ok ok ok ok", -0.25, 4, "repetitive"),
                (3, "", " \u2026", -3.0, 1, "empty"),
            ],
        )

    shown = cli("queue", "show", "1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    start = lines.index("candidates: 4 sampled, best first")
    table = [line.split(None, 3) for line in lines[start + 2 : start + 6]]
    assert [row[:3] for row in table] == [
        ["0", "-0.71", "used"],
        ["1", "-1.20", "outranked"],
        ["2", "-0.25", "repetitive"],
        ["3", "-3.00", "empty"],
    ]
    assert table[0][3] == "It ships today!"
    assert table[1][3].startswith("It ships soon, really") and table[1][3].endswith("…")
    assert table[3][3] == "(empty) raw ' …'"
    # Listings do not load candidates, so their JSON does not pretend there are none.
    (listed,) = [json.loads(line) for line in cli("queue", "list", "--json").stdout.splitlines()]
    assert listed["draft_id"] == 1 and "candidates" not in listed


def test_uncached_hub_model_offline_is_one_clear_line(cli: Run) -> None:
    result = cli("chat", stdin="hello\n", AUTOREPLY_MODEL="gpt2", AUTOREPLY_MODE="auto")
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert len(err) == 1, result.stderr
    assert err[0].startswith("error:") and "AUTOREPLY_MODEL" in err[0]


def test_mode_off_needs_no_model(cli: Run) -> None:
    result = cli("chat", stdin="hello\n", AUTOREPLY_MODE="off", AUTOREPLY_MODEL="/nonexistent")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[ignored: mode is off]"


def test_db_verbs(cli: Run) -> None:
    up = cli("db", "upgrade")
    assert up.returncode == 0, up.stderr
    current = cli("db", "current")
    assert "up to date" in current.stdout
    down = cli("db", "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert "base" in cli("db", "current").stdout


def test_bad_settings_are_reported_plainly(cli: Run) -> None:
    result = cli("queue", "list", AUTOREPLY_MODE="sometimes")
    assert result.returncode == 1
    assert "AUTOREPLY" in result.stderr and "Traceback" not in result.stderr


ACCOUNTS_TOML = """
[[accounts]]
name = "shop"
platform = "telegram"
mode = "auto"
persona = "You sell shoes."

[accounts.telegram]
token_env = "SHOP_BOT_TOKEN"

[[accounts]]
name = "bank"
platform = "telegram"
mode = "review_all"
default = true

[accounts.telegram]
token_env = "BANK_BOT_TOKEN"
"""


def test_accounts_chat_queue_and_list_by_account(cli: Run, tmp_path: Path) -> None:
    config = tmp_path / "accounts.toml"
    config.write_text(ACCOUNTS_TOML)
    env = {
        "AUTOREPLY_CONFIG": str(config),
        "SHOP_BOT_TOKEN": "111:shop",
        "BANK_BOT_TOKEN": "222:bank",
    }
    # The default account (bank, review_all) queues; --account shop answers on its own.
    bank = cli("chat", stdin="what is my balance?\n", **env)
    assert bank.returncode == 0, bank.stderr
    assert bank.stdout.startswith("[queued for review]")
    shop = cli("chat", "--account", "shop", stdin="hi there\n", **env)
    assert shop.returncode == 0, shop.stderr
    assert not shop.stdout.startswith("["), shop.stdout

    listed = cli("queue", "list", "--account", "console-bank", "--json", **env)
    assert [json.loads(line)["account"] for line in listed.stdout.splitlines()] == ["console-bank"]
    assert cli("queue", "list", "--account", "shop", **env).stdout.strip() == "the queue is empty"
    # Without --account: the default account (bank) and its console; `all`: every account.
    default = cli("queue", "list", "--json", **env).stdout.splitlines()
    assert [json.loads(line)["account"] for line in default] == ["console-bank"]
    everything = cli("queue", "list", "--account", "all", "--json", **env).stdout.splitlines()
    assert len(everything) == 1

    accounts = cli("accounts", "list", "--json", **env)
    assert accounts.returncode == 0, accounts.stderr
    rows = {row["name"]: row for row in map(json.loads, accounts.stdout.splitlines())}
    assert rows["bank"]["mode"] == "review_all" and rows["bank"]["default"] is True
    assert rows["shop"]["health"] == "never started"
    assert rows["console-bank"]["queued"] == 1 and rows["console-shop"]["queued"] == 0
    assert rows["console-bank"]["mode"] == "not configured"
    table = cli("accounts", "list", **env).stdout
    assert "bank*" in table and "console-shop" in table

    unknown = cli("chat", "--account", "shoe", stdin="hi\n", **env)
    assert unknown.returncode == 1
    assert "no account named 'shoe'; configured: shop, bank" in unknown.stderr

    missing = cli("accounts", "list", **{**env, "BANK_BOT_TOKEN": ""})
    assert missing.returncode == 1
    assert "account 'bank': telegram.token_env" in missing.stderr
    assert "BANK_BOT_TOKEN is not set" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_pause_and_override_from_the_cli_are_audited(cli: Run) -> None:
    chat = cli("chat", stdin="hi\n", AUTOREPLY_MODE="review_all")
    assert chat.returncode == 0, chat.stderr
    db_file = cli.db_file  # type: ignore[attr-defined]
    # Mark the draft as the safety gate would have marked a blocked one.
    with sqlite3.connect(db_file) as con:
        con.execute("update reply_drafts set verdict = 'block', flags = '[\"toxic\"]'")
    refused = cli("queue", "approve", "1", "--by", "alice")
    assert refused.returncode == 1
    assert "blocked by the safety gate (toxic)" in refused.stderr
    assert "--override REASON" in refused.stderr
    done = cli("queue", "approve", "1", "--override", "it is fine, checked", "--by", "alice")
    assert done.returncode == 0, done.stderr
    assert "reply stored as sent" in done.stdout  # a console reply: delivered at once

    paused = cli("accounts", "pause", "default", "--by", "alice")
    assert paused.stdout.strip() == "Auto-replies paused for the whole account."
    assert cli("chat", stdin="hello?\n").stdout.strip() == (
        "[ignored: auto-replies are paused here]"
    )
    cli("accounts", "resume", "default")
    audit = _rows(db_file, "select moderator, action, target_kind, note from moderation_actions")
    assert audit == [
        ("alice", "refused", "draft", "approve: blocked draft, no override"),
        ("alice", "override", "draft", "it is fine, checked"),
        ("alice", "pause", "account", None),
        (audit[3][0], "resume", "account", None),
    ]
