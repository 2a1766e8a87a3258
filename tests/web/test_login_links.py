"""One-time login links on both backends: queued only to the user's own private chat, never a
group; a link logs in once, and neither a second use nor an expired link works."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.domain import ActorRole, ChatKind
from bot.errors import InputError, InvalidStateError
from bot.storage import accounts as account_store
from bot.storage import history, web_users
from bot.storage import models as m
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema
from bot.web.login_links import send_link
from bot.web.passwords import hash_password
from tests.web.conftest import PASSWORD, csrf_of

LINK = re.compile(r"https?://\S+/login/link/(\S+)")


def _user(db: Database, name: str, telegram_id: str | None) -> None:
    with db.session() as s:
        web_users.add(
            s,
            name,
            hash_password(PASSWORD),
            ActorRole.MODERATOR,
            None,
            platform="telegram" if telegram_id else None,
            platform_user_id=telegram_id,
        )
        account_store.ensure(s, "telegram", "shop")


def _sent(db: Database) -> list[tuple[str, ChatKind, str, str]]:
    with db.session() as s:
        rows = s.execute(
            select(
                m.Conversation.chat_id, m.Conversation.kind, m.OutboxItem.kind, m.OutboxItem.text
            )
            .join(m.Conversation, m.OutboxItem.conversation_id == m.Conversation.id)
            .order_by(m.OutboxItem.id)
        ).all()
    return [(chat, kind, out.value, text) for chat, kind, out, text in rows]


def _use(client: TestClient, token: str) -> int:
    page = client.get(f"/login/link/{token}")
    assert page.status_code == 200 and 'action="/login/link"' in page.text
    answer = client.post(
        "/login/link",
        data={"token": token, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    return answer.status_code


def test_a_link_goes_to_the_private_chat_and_logs_in_once(
    client: TestClient, migrated_db: Database
) -> None:
    _user(migrated_db, "alice", "4242")
    with migrated_db.session() as s:
        send_link(s, "alice", "shop", "https://mod.example", timedelta(minutes=10))
    ((chat, kind, out, text),) = _sent(migrated_db)
    assert (chat, kind, out) == ("4242", ChatKind.PRIVATE, "notice")
    match = LINK.search(text)
    assert match and text.startswith("Your one-time login link")
    token = match.group(1)
    with migrated_db.session() as s:  # only the hash is kept
        assert token not in str(s.scalars(select(m.WebLoginLink.token_hash)).all())
    assert client.get("/queue", follow_redirects=False).status_code == 303
    assert _use(client, token) == 303
    assert "alice" in client.get("/queue").text
    client.cookies.clear()
    assert _use(client, token) == 410  # single use
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_an_expired_link_does_not_log_in(client: TestClient, migrated_db: Database) -> None:
    _user(migrated_db, "alice", "4242")
    with migrated_db.session() as s:
        send_link(s, "alice", "shop", "http://x", timedelta(seconds=-1))
    match = LINK.search(_sent(migrated_db)[0][3])
    assert match
    assert _use(client, match.group(1)) == 410


def test_links_never_go_to_a_group_or_to_a_user_without_a_platform_id(
    migrated_db: Database,
) -> None:
    _user(migrated_db, "alice", "-100200")
    _user(migrated_db, "bob", None)
    _user(migrated_db, "carol", "777")
    with migrated_db.session() as s:
        shop = account_store.by_name(s, "shop")
        assert shop is not None
        history.ensure_conversation_id(s, shop.id, "777", ChatKind.GROUP, "a group")
    for name, error, words in (
        ("alice", InputError, "groups have negative ids"),
        ("bob", InputError, "--telegram-id"),
        ("carol", InvalidStateError, "never sent to a group"),
    ):
        with pytest.raises(error, match=words), migrated_db.session() as s:
            send_link(s, name, "shop", "http://x", timedelta(minutes=5))
    assert _sent(migrated_db) == []
    with migrated_db.session() as s:
        assert s.scalars(select(m.WebLoginLink)).all() == []


def test_users_link_command(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOREPLY_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AUTOREPLY_TELEGRAM_TOKEN", "123456:ABCdefGHIjklMNOpqrSTUvwxYZ0123456789")
    monkeypatch.setenv("AUTOREPLY_WEB_PUBLIC_URL", "https://mod.example")
    runner = CliRunner()
    added = runner.invoke(
        cli,
        ["users", "add", "alice", "--telegram-id", "4242", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    ensure_schema(sqlite_url)
    db = Database(sqlite_url)
    try:
        with db.session() as s:
            account_store.ensure(s, "telegram", "default")
        sent = runner.invoke(cli, ["users", "link", "alice"])
        assert sent.exit_code == 0, sent.output
        assert "queued to their private chat with 'default'" in sent.output
        ((chat, kind, _, text),) = _sent(db)
        assert chat == "4242" and kind is ChatKind.PRIVATE
        assert "https://mod.example/login/link/" in text
    finally:
        db.dispose()
