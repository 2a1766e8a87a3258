"""The whole learning loop as an operator runs it, on the tiny model: chat in review mode,
moderators approve and edit, export, train a reply adapter, evaluate and promote it, and the
next drafts come from the new adapter. The chats are real `autoreply chat` processes; the
queue, export, train and adapters verbs run through the same Typer app in-process (each
would otherwise pay a process start)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.training.reply_data import EXCHANGES

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

ROUNDS = 3  # every exchange asked three times: 30 moderated replies


def _rows(db_file: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_file) as con:
        return con.execute(sql).fetchall()


def test_moderated_drafts_train_an_adapter_that_then_drafts(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_file = tmp_path / "autoreply.db"
    env = {
        "AUTOREPLY_DATABASE_URL": f"sqlite:///{db_file}",
        "AUTOREPLY_MODEL": str(tiny_model_dir),
        "AUTOREPLY_MODE": "review_all",
        "AUTOREPLY_SEED": "0",
        "AUTOREPLY_DO_SAMPLE": "false",
        "AUTOREPLY_MAX_NEW_TOKENS": "16",
        "AUTOREPLY_ADAPTERS_DIR": str(tmp_path / "adapters"),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)

    def chat(lines: list[str]) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "chat"],
            input="".join(f"{line}\n" for line in lines),
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=tmp_path,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr

    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    # 1. Users write; every draft waits for a moderator.
    asked = [question for _ in range(ROUNDS) for question, _ in EXCHANGES]
    chat(asked)
    queued = [json.loads(line) for line in cli("queue", "list", "--json").splitlines()]
    assert len(queued) == len(asked)

    # 2. Moderators approve what reads well and write the replies the model got wrong.
    answers = dict(EXCHANGES)
    for item in queued:
        wanted = answers[item["message_text"]]
        if item["draft_text"] == wanted:
            cli("queue", "approve", str(item["draft_id"]), "--by", "mia")
        else:
            cli("queue", "edit", str(item["draft_id"]), wanted, "--by", "mia")
    assert _rows(db_file, "select count(*) from reply_drafts where status = 'pending'") == [(0,)]

    # 3. Export, train, evaluate, promote.
    exported = cli("export", "--out", str(tmp_path / "export"))
    assert "sft" in exported
    trained = cli("train", "reply", "--epochs", "12", "--batch-size", "8", "--lr", "3e-3")
    name = "default-reply-v1"
    assert name in trained
    evaluated = cli("adapters", "eval", name, "--promote", "--by", "olga")
    assert "PROMOTE" in evaluated and f"{name} promoted" in evaluated, evaluated
    assert name in cli("adapters", "list")

    # 4. The next drafts come from the new adapter, in a new process.
    chat(["where is my refund?"])
    (adapter,) = _rows(db_file, "select adapter from reply_drafts order by id desc limit 1")[0]
    assert adapter == name
    audit = _rows(db_file, "select action, target from moderation_actions where action='promote'")
    assert [(a, str(t).split()[-1]) for a, t in audit] == [("promote", name)]
