"""Revision 0002 (account names, the wider audit trail) on a database that holds data.

An empty database hides NOT NULL and backfill mistakes, so these tests fill a 0001 schema with
the rows a running service leaves behind, written with plain SQL as 0001 knew them, migrate
up and down, and compare every row before and after.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, BindParameter, Connection, DateTime, bindparam, text
from sqlalchemy.pool import NullPool

from bot.storage import migrate
from bot.storage.db import make_engine

Row = dict[str, Any]
Snapshot = dict[str, list[Row]]

# Every table the scenario fills, parents first.
TABLES = [
    "accounts",
    "platform_users",
    "conversations",
    "messages",
    "processed_updates",
    "analyses",
    "reply_drafts",
    "moderation_actions",
    "outbox",
]
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@contextmanager
def _connect(url: str) -> Iterator[Connection]:
    """One transaction on the application's engine: SQLite enforces foreign keys here."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def _bind(name: str, value: Any) -> BindParameter[Any]:
    """Datetimes and JSON are bound as the models store them (SQLite keeps both as text)."""
    if isinstance(value, datetime):
        return bindparam(name, value, type_=DateTime(timezone=True))
    if isinstance(value, dict | list):
        return bindparam(name, value, type_=JSON)
    return bindparam(name, value)


def _insert(connection: Connection, table: str, **values: Any) -> None:
    """INSERT one row in plain SQL, as a database at revision 0001 would have taken it."""
    params = [_bind(name, value) for name, value in values.items()]
    columns = ", ".join(values)
    placeholders = ", ".join(f":{name}" for name in values)
    connection.execute(
        text(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})").bindparams(*params)
    )


def _snapshot(url: str) -> Snapshot:
    with _connect(url) as connection:
        return {
            table: [
                dict(row._mapping)
                for row in connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")
            ]
            for table in TABLES
        }


def _without(rows: list[Row], *columns: str) -> list[Row]:
    return [{k: v for k, v in row.items() if k not in columns} for row in rows]


def _only_columns_of(rows: list[Row], like: list[Row]) -> list[Row]:
    """`rows` cut down to the columns that `like` has: the old columns of migrated rows."""
    keep = set(like[0]) if like else set()
    return [{k: v for k, v in row.items() if k in keep} for row in rows]


def _by_id(rows: list[Row], *columns: str) -> dict[int, tuple[Any, ...]]:
    return {row["id"]: tuple(row[c] for c in columns) for row in rows}


def _fill_0001(url: str) -> None:
    """A console account and a Telegram bot, each with a conversation, replies and audit rows."""
    at = [T0 + timedelta(minutes=n) for n in range(12)]
    with _connect(url) as c:
        _insert(c, "accounts", id=1, platform="console", handle="default", persona="kind")
        _insert(c, "accounts", id=2, platform="telegram", handle="123456", mode="review_all")
        _insert(c, "platform_users", id=1, account_id=1, platform_user_id="local")
        _insert(c, "platform_users", id=2, account_id=2, platform_user_id="777", display_name="Ann")
        _insert(c, "conversations", id=1, account_id=1, chat_id="local", kind="private")
        _insert(
            c,
            "conversations",
            id=2,
            account_id=2,
            chat_id="777",
            kind="private",
            last_message_at=at[9],
        )
        # Console: a question answered automatically.
        _insert(
            c,
            "messages",
            id=1,
            account_id=1,
            conversation_id=1,
            user_id=1,
            direction="in",
            text="hi",
            decision="auto",
            decision_reason="allow",
            handled_at=at[1],
            created_at=at[0],
        )
        _insert(
            c,
            "messages",
            id=2,
            account_id=1,
            conversation_id=1,
            direction="out",
            reply_to_id=1,
            text="hello!",
            sent_at=at[2],
            created_at=at[2],
        )
        # Telegram: three questions held for review (one edited on the platform), one answer.
        for id_, platform_id, edit, words in [
            (3, "501", 0, "where is my order?"),
            (4, "502", 0, "you are useless"),
            (5, "502", 1, "you are useless!!"),
            (6, "503", 0, "thanks"),
        ]:
            _insert(
                c,
                "messages",
                id=id_,
                account_id=2,
                conversation_id=2,
                user_id=2,
                direction="in",
                platform_message_id=platform_id,
                edit_version=edit,
                text=words,
                decision="review",
                handled_at=at[id_],
                created_at=at[id_ - 1],
            )
        _insert(
            c,
            "messages",
            id=7,
            account_id=2,
            conversation_id=2,
            direction="out",
            platform_message_id="504",
            reply_to_id=3,
            text="it ships today",
            sent_at=at[9],
            addressed=False,
        )
        _insert(c, "processed_updates", id=1, account_id=2, update_id=900_000_001, message_id=3)
        _insert(c, "processed_updates", id=2, account_id=2, update_id=900_000_002)
        for id_, message_id, verdict in [(1, 1, "allow"), (2, 3, "allow"), (3, 4, "review")]:
            _insert(
                c,
                "analyses",
                id=id_,
                message_id=message_id,
                intent="question",
                intent_score=0.9,
                sentiment="neutral",
                sentiment_score=0.5,
                scores={"question": 0.9, "complaint": 0.1},
                input_verdict=verdict,
                input_toxicity=0.01,
                input_flags=[] if verdict == "allow" else ["insult"],
                model_version="intent-v1",
            )
        for id_, message_id, status, outbound in [
            (1, 1, "sent", 2),
            (2, 3, "sent", 7),
            (3, 5, "rejected", None),
            (4, 6, "approved", None),
            (5, 4, "queued", None),
        ]:
            _insert(
                c,
                "reply_drafts",
                id=id_,
                message_id=message_id,
                text=f"draft {id_}",
                raw_text=f"raw {id_}",
                fallback_used=id_ == 5,
                status=status,
                verdict="review" if id_ > 1 else "allow",
                toxicity=0.02,
                flags=["long"],
                model_version="gpt2+lora",
                adapter="a-3" if id_ > 1 else None,
                outbound_message_id=outbound,
                created_at=at[id_],
                updated_at=at[id_ + 1],
            )
        for id_, draft_id, moderator, action, before, after, note in [
            (1, 1, "policy", "auto_send", None, "draft 1", None),
            (2, 2, "cli:alice", "approve", "draft 2", "draft 2", None),
            (3, 5, "@mo (2001)", "refused", None, None, "approve button, not a moderator"),
            (4, 3, "cli", "reject", "draft 3", None, "rude"),
            (5, 2, "@ops (2002)", "edit", "draft 2", "it ships today", None),
        ]:
            _insert(
                c,
                "moderation_actions",
                id=id_,
                draft_id=draft_id,
                moderator=moderator,
                action=action,
                before_text=before,
                after_text=after,
                note=note,
                created_at=at[id_],
            )
        _insert(
            c,
            "outbox",
            id=1,
            account_id=1,
            conversation_id=1,
            draft_id=1,
            reply_to_id=1,
            text="hello!",
            status="sent",
            attempts=1,
            outbound_message_id=2,
            sent_at=at[2],
        )
        _insert(
            c,
            "outbox",
            id=2,
            account_id=2,
            conversation_id=2,
            draft_id=2,
            reply_to_id=3,
            text="it ships today",
            status="sent",
            attempts=2,
            last_error="timed out",
            platform_message_id="504",
            outbound_message_id=7,
            sent_at=at[9],
        )
        _insert(
            c,
            "outbox",
            id=3,
            account_id=2,
            conversation_id=2,
            draft_id=4,
            reply_to_id=6,
            text="draft 4",
            status="pending",
            next_attempt_at=at[11],
        )
        _insert(
            c,
            "outbox",
            id=4,
            account_id=2,
            conversation_id=2,
            kind="notice",
            text="a reply may not have been delivered",
            status="unknown",
            attempts=1,
        )


def _assert_same_rows(after: Snapshot, before: Snapshot, **dropped: tuple[str, ...]) -> None:
    """Every row of `before` is in `after` with the same id and the same values in the columns
    both revisions have (`dropped` names, per table, the columns `after` no longer has)."""
    for table in TABLES:
        expected = _without(before[table], *dropped.get(table, ()))
        assert _only_columns_of(after[table], expected) == expected, table


def test_upgrade_keeps_every_row_and_backfills(db_url: str) -> None:
    migrate.upgrade(db_url, "0001")
    _fill_0001(db_url)
    before = _snapshot(db_url)

    migrate.upgrade(db_url, "0002")

    after = _snapshot(db_url)
    _assert_same_rows(after, before, accounts=("persona", "mode"))
    assert _by_id(after["accounts"], "name", "health") == {
        1: ("console-default", None),
        2: ("default", None),
    }
    audit = ("account_id", "target_kind", "target", "actor_kind", "actor_id")
    assert _by_id(after["moderation_actions"], *audit) == {
        1: (1, "draft", "1", "policy", None),
        2: (2, "draft", "2", "cli", None),
        3: (2, "draft", "5", "telegram", None),
        4: (2, "draft", "3", "cli", None),
        5: (2, "draft", "2", "telegram", None),
    }
    migrate.upgrade(db_url)  # later revisions apply on top and match the models
    migrate.check_drift(db_url)


def test_audit_outlives_its_draft_and_downgrade_keeps_the_rest(db_url: str) -> None:
    migrate.upgrade(db_url, "0001")
    _fill_0001(db_url)
    before = _snapshot(db_url)
    migrate.upgrade(db_url, "0002")

    with _connect(db_url) as c:  # foreign keys on: the delete runs the ON DELETE rules
        c.execute(text("DELETE FROM reply_drafts WHERE id = 3"))
        # Rows only 0002 can hold: no draft, and actions 0001 does not know.
        _insert(
            c,
            "moderation_actions",
            id=6,
            account_id=2,
            target_kind="account",
            target="default",
            actor_kind="cli",
            actor_id="alice",
            moderator="cli:alice",
            action="pause",
        )
        _insert(
            c,
            "moderation_actions",
            id=7,
            account_id=2,
            draft_id=5,
            target="5",
            actor_kind="telegram",
            actor_id="2001",
            moderator="@mo (2001)",
            action="override",
            note="quoting the customer",
        )
    at_head = _snapshot(db_url)
    assert _by_id(at_head["moderation_actions"], "draft_id", "target", "action")[4] == (
        None,
        "3",
        "reject",
    )
    assert [row["id"] for row in at_head["reply_drafts"]] == [1, 2, 4, 5]

    migrate.downgrade(db_url, "0001")

    assert migrate.current(db_url) == "0001"
    after = _snapshot(db_url)
    # What 0001 can hold is unchanged; persona and mode come back empty.
    kept = {
        table: rows
        for table, rows in before.items()
        if table not in {"accounts", "reply_drafts", "moderation_actions"}
    }
    assert {table: after[table] for table in kept} == kept
    assert after["reply_drafts"] == [row for row in before["reply_drafts"] if row["id"] != 3]
    assert _without(after["accounts"], "persona", "mode") == _without(
        before["accounts"], "persona", "mode"
    )
    assert _by_id(after["accounts"], "persona", "mode") == {1: (None, None), 2: (None, None)}
    # The orphaned audit row (draft deleted) and the pause are gone; override became approve.
    assert after["moderation_actions"][:4] == [
        row for row in before["moderation_actions"] if row["id"] != 4
    ]
    assert _by_id(after["moderation_actions"][4:], "draft_id", "moderator", "action") == {
        7: (5, "@mo (2001)", "approve")
    }

    migrate.upgrade(db_url)
    migrate.check_drift(db_url)


def _accounts(url: str, rows: list[tuple[str, str]]) -> dict[str, str]:
    with _connect(url) as c:
        for platform, handle in rows:
            _insert(c, "accounts", platform=platform, handle=handle)
    migrate.upgrade(url, "0002")
    with _connect(url) as c:
        result = c.execute(text("SELECT handle, name FROM accounts ORDER BY id"))
        return {handle: name for handle, name in result.all()}


LONG = "x" * 60  # "mastodon-" + 60 characters does not fit in 64


@pytest.mark.parametrize(
    ("rows", "names"),
    [
        pytest.param([("console", "default")], {"default": "default"}, id="console only"),
        pytest.param(
            [("console", "default"), ("telegram", "1"), ("mastodon", LONG)],
            {"default": "default", "1": "telegram-1", LONG: "mastodon-3"},
            id="two bots: the console account",
        ),
        pytest.param(
            [("console", "tester"), ("telegram", "1"), ("telegram", "2")],
            {"tester": "console-tester", "1": "telegram-1", "2": "telegram-2"},
            id="no default",
        ),
    ],
)
def test_account_names(db_url: str, rows: list[tuple[str, str]], names: Mapping[str, str]) -> None:
    migrate.upgrade(db_url, "0001")
    assert _accounts(db_url, rows) == names
