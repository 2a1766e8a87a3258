"""`autoreply users ban|unban`, `chats handoff|handback`, `queue reply|pending|cancel`, in
process on a real SQLite file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.domain import Incoming, utcnow
from bot.errors import InvalidStateError
from bot.storage import accounts as account_store
from bot.storage import history, outbox_store
from bot.storage import models as m
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema
from tests.fakes import queue_draft


@pytest.fixture
def db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Database:
    monkeypatch.chdir(tmp_path)  # no autoreply.toml: the flat console account `default`
    monkeypatch.delenv("AUTOREPLY_CONFIG", raising=False)
    monkeypatch.setenv("AUTOREPLY_DATABASE_URL", sqlite_url)
    ensure_schema(sqlite_url)
    return Database(sqlite_url)


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None:
        raise result.exception
    return result.output


def test_ban_handoff_and_reply_from_the_cli(db: Database) -> None:
    _, draft_id = queue_draft(db, account="default", platform="console", chat_id="local")

    # Another user: a ban also rejects the banned user's queued drafts (test_policy_pipeline).
    assert "is banned" in _cli("users", "ban", "default", "7", "--reason", "spam")
    with pytest.raises(InvalidStateError, match="already banned"):
        _cli("users", "ban", "default", "7")
    assert "no longer banned" in _cli("users", "unban", "default", "7")

    # Another chat: a handoff also turns the chat's queued drafts into items for a person, audited
    # as part of the handoff (test_late_controls).
    queue_draft(db, account="default", platform="console", chat_id="desk", user_id="8")
    assert "handed to people" in _cli("chats", "handoff", "default", "desk")
    assert "handed back" in _cli("chats", "handback", "default", "desk")

    _cli("queue", "reply", str(draft_id), "Hi, Sam here: it ships today.", "--by", "sam")
    with db.session() as s:
        sent = s.scalars(select(m.OutboxItem).where(m.OutboxItem.draft_id == draft_id)).one()
        assert (sent.text, sent.status) == ("Hi, Sam here: it ships today.", m.OutboxStatus.SENT)
        audit = s.execute(
            select(m.ModerationAction.action, m.ModerationAction.moderator).order_by(
                m.ModerationAction.id
            )
        ).all()
    assert [(a.value, who) for a, who in audit][-1] == ("reply", "sam")
    assert [a.value for a, _ in audit][:5] == ["ban", "unban", "handoff", "handoff", "handback"]


def test_pending_sends_are_listed_and_cancelled(db: Database) -> None:
    with db.session() as s:
        stored = history.ingest(
            s,
            Incoming(
                platform="console",
                account="default",
                chat_id="c9",
                message_id="1",
                user_id="9",
                text="hello",
            ),
        )
        account = account_store.by_name(s, "default")
        assert account is not None
        outbox_id = outbox_store.enqueue(
            s,
            account_id=account.id,
            conversation_id=stored.conversation_id,
            text="Hello! Happy to help.",
            draft_id=None,
            reply_to_id=stored.message_id,
            not_before=utcnow() + timedelta(minutes=5),
        )
    listing = _cli("queue", "pending")
    assert f"#{outbox_id}" in listing and "Hello! Happy to help." in listing
    assert "nothing was sent" in _cli("queue", "cancel", str(outbox_id), "--reason", "typo")
    assert "No replies are waiting" in _cli("queue", "pending")
