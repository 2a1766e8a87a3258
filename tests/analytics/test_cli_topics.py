"""`autoreply analytics topics` as an operator runs it: real subprocesses on a SQLite file, the
messages taken in through `autoreply chat` (mode off: no model needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.analytics.test_topic_model import DATA


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
        timeout=300,
    )


def test_a_fit_by_hand_prints_the_topics(tmp_path: Path) -> None:
    lines = [line.split("\t")[1] for line in DATA.read_text(encoding="utf-8").splitlines()]
    chat = _cli(tmp_path, "chat", stdin="\n".join(lines) + "\n")
    assert chat.returncode == 0, chat.stderr

    fitted = _cli(tmp_path, "analytics", "topics", "--account", "default")

    assert fitted.returncode == 0, fitted.stderr
    assert "default: 4 topics over 60 messages of the last 7 days (run 1)" in fitted.stdout
    assert "wifi" in fitted.stdout and "luggage" in fitted.stdout
    assert "new" in fitted.stdout  # no previous week to compare with


def test_an_unknown_account_exits_with_a_hint(tmp_path: Path) -> None:
    result = _cli(tmp_path, "analytics", "topics", "--account", "nobody")
    assert result.returncode != 0
    assert "no account named 'nobody'" in result.stderr + result.stdout
