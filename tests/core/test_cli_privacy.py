"""`autoreply erase-user` and `autoreply db prune` as an operator runs them: real subprocesses on
a real SQLite file (no model needed: the account's mode is off)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path


def _cli(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AUTOREPLY_DATABASE_URL": f"sqlite:///{tmp_path / 'autoreply.db'}",
        "AUTOREPLY_MODE": "off",
        "AUTOREPLY_MODEL": "/nonexistent",
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def _one(tmp_path: Path, sql: str) -> object:
    with sqlite3.connect(tmp_path / "autoreply.db") as con:
        return con.execute(sql).fetchone()[0]


def test_erase_user_reports_counts_and_an_unknown_user_exits_1(tmp_path: Path) -> None:
    chat = _cli(tmp_path, "chat", stdin="my mail is dana@example.org\n")
    assert chat.returncode == 0, chat.stderr
    user = str(_one(tmp_path, "select platform_user_id from platform_users"))

    erased = _cli(tmp_path, "erase-user", "console", user, "--by", "dpo")

    assert erased.returncode == 0, erased.stderr
    assert f"erased console user {user} in account 'default':" in erased.stdout
    assert "  messages             1" in erased.stdout
    assert _one(tmp_path, "select count(*) from messages") == 0
    assert _one(tmp_path, "select erased from platform_users") == 1
    assert _one(tmp_path, "select moderator from moderation_actions where action='erase'") == "dpo"

    unknown = _cli(tmp_path, "erase-user", "console", "nobody")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: console user 'nobody' is not known to any account")


def test_db_prune_needs_a_period(tmp_path: Path) -> None:
    result = _cli(tmp_path, "db", "prune")
    assert result.returncode == 2
    assert "give --days N, or set AUTOREPLY_RETENTION_DAYS" in result.stderr
    by_hand = _cli(tmp_path, "db", "prune", "--days", "30")
    assert by_hand.returncode == 0, by_hand.stderr
    assert by_hand.stdout.strip() == "no accounts in the database yet: nothing to prune"
