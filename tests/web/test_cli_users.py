"""`autoreply users add|list|passwd|remove` through the real CLI, and `autoreply web` as a real
process: it serves until SIGTERM, then exits cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.domain import ActorRole
from bot.storage import web_users
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema
from bot.web.passwords import verify_password

PASSWORD = "a long enough password"


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AUTOREPLY_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AUTOREPLY_WEB_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.delenv("AUTOREPLY_WEB_PASSWORD", raising=False)
    return sqlite_url


def _users(url: str) -> list[web_users.WebUserRow]:
    ensure_schema(url)
    db = Database(url)
    try:
        with db.session() as s:
            return web_users.all_users(s)
    finally:
        db.dispose()


def test_add_list_passwd_remove(env: str) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "users",
            "add",
            "alice",
            "--role",
            "moderator",
            "--accounts",
            "default",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert "moderator 'alice' added (default)" in added.output
    prompted = runner.invoke(
        app, ["users", "add", "root", "--role", "operator"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output  # the prompt hides it
    listed = runner.invoke(app, ["users", "list"])
    assert "alice" in listed.output and "root" in listed.output and "all accounts" in listed.output
    (alice, root) = _users(env)
    assert alice.role is ActorRole.MODERATOR and alice.accounts == frozenset({"default"})
    assert root.role is ActorRole.OPERATOR and root.accounts is None
    assert alice.password_hash.startswith("$argon2id$")
    assert verify_password(alice.password_hash, PASSWORD)

    changed = runner.invoke(
        app, ["users", "passwd", "alice"], env={"AUTOREPLY_WEB_PASSWORD": "another fine password"}
    )
    assert changed.exit_code == 0, changed.output
    assert verify_password(_users(env)[0].password_hash, "another fine password")
    removed = runner.invoke(app, ["users", "remove", "alice"])
    assert removed.exit_code == 0
    assert [u.name for u in _users(env)] == ["root"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["users", "add", "bob", "--password-stdin"], "short\n", "at least 10"),
        (
            [
                "users",
                "add",
                "bob",
                "--role",
                "operator",
                "--accounts",
                "default",
                "--password-stdin",
            ],
            PASSWORD + "\n",
            "operators act on every account",
        ),
        (
            ["users", "add", "bob", "--accounts", "nosuch", "--password-stdin"],
            PASSWORD + "\n",
            "no configured account named 'nosuch'",
        ),
        (["users", "remove", "ghost"], "", "no dashboard user 'ghost'"),
        (
            ["users", "add", "bob", "--telegram-id", "-100200", "--password-stdin"],
            PASSWORD + "\n",
            "never a group's negative id",
        ),
    ],
)
def test_mistakes_say_what_to_do(env: str, args: list[str], stdin: str, message: str) -> None:
    result = CliRunner().invoke(app, args, input=stdin)
    assert result.exit_code != 0
    assert message in str(result.exception)
    assert _users(env) == []


def test_a_taken_name_is_refused(env: str) -> None:
    runner = CliRunner()
    args = ["users", "add", "bob", "--password-stdin"]
    assert runner.invoke(app, args, input=PASSWORD + "\n").exit_code == 0
    again = runner.invoke(app, args, input=PASSWORD + "\n")
    assert "already a dashboard user 'bob'" in str(again.exception)


def test_autoreply_web_serves_until_sigterm(env: str, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    environ = {**os.environ, "AUTOREPLY_WEB_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "web"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "autoreply web did not listen in 120 s"
                time.sleep(0.2)
        assert answer.json() == {"status": "ready"}
        login = httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert "Log in" in login.text and "/static/app.css" in login.text
        assert httpx.get(f"http://127.0.0.1:{port}/static/app.js", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
