"""Revision 0005 (decision policy) on a database with users, chats, drafts, sends and audit rows:
up, use, down, up. Existing rows keep their values (new columns start empty, strikes at 0);
rows using the new values go back to what 0004 allows."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.storage import migrate
from tests.storage.test_migration_0002 import (
    T0,
    TABLES,
    _connect,
    _fill_0001,
    _insert,
    _only_columns_of,
    _snapshot,
)


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with _connect(url) as c:
        return [tuple(row) for row in c.execute(text(sql))]


def test_upgrade_keeps_rows_and_new_values_go_back_on_downgrade(db_url: str) -> None:
    migrate.upgrade(db_url, "0001")
    _fill_0001(db_url)
    migrate.upgrade(db_url, "0004")
    before = _snapshot(db_url)

    migrate.upgrade(db_url, "0005")

    after = _snapshot(db_url)
    for table in TABLES:
        assert _only_columns_of(after[table], before[table]) == before[table], table
    assert _rows(db_url, "SELECT id, banned_at, strikes FROM platform_users ORDER BY id") == [
        (1, None, 0),
        (2, None, 0),
    ]
    assert _rows(db_url, "SELECT handed_off_at, away_sent_at FROM conversations") == [
        (None, None),
        (None, None),
    ]
    draft_id = _rows(db_url, "SELECT min(id) FROM reply_drafts")[0][0]
    outbox_id = _rows(db_url, "SELECT min(id) FROM outbox")[0][0]
    with _connect(db_url) as c:
        c.execute(
            text("UPDATE platform_users SET banned_at = :t, strikes = 3 WHERE id = 2"), {"t": T0}
        )
        c.execute(text("UPDATE conversations SET handed_off_at = :t WHERE id = 2"), {"t": T0})
        c.execute(text(f"UPDATE reply_drafts SET status = 'expired' WHERE id = {draft_id}"))
        c.execute(text(f"UPDATE outbox SET status = 'cancelled' WHERE id = {outbox_id}"))
        for n, action in enumerate(("ban", "handoff", "reply", "safe_reply", "expire", "cancel")):
            _insert(
                c,
                "moderation_actions",
                id=900 + n,
                account_id=2,
                moderator="policy",
                action=action,
                target_kind="chat",
                target="777",
            )
    with pytest.raises(IntegrityError), _connect(db_url) as c:  # still a CHECK on actions
        _insert(c, "moderation_actions", account_id=2, moderator="x", action="smite")

    migrate.downgrade(db_url, "0004")

    assert migrate.current(db_url) == "0004"
    downgraded = _snapshot(db_url)
    assert _rows(db_url, f"SELECT status FROM reply_drafts WHERE id = {draft_id}") == [
        ("rejected",)
    ]
    assert _rows(db_url, f"SELECT status FROM outbox WHERE id = {outbox_id}") == [("failed",)]
    for table in ("accounts", "platform_users", "conversations", "messages", "moderation_actions"):
        assert downgraded[table] == before[table], table  # new columns and audit rows gone

    migrate.upgrade(db_url)
    assert _rows(db_url, "SELECT count(*) FROM platform_users WHERE banned_at IS NOT NULL") == [
        (0,)
    ]
    migrate.check_drift(db_url)


def test_downgrade_keeps_the_erase_and_prune_records(db_url: str) -> None:
    """The privacy audit trail outlives a downgrade, unchanged (the proof that data was
    removed); the other new actions go. Upgrading again keeps them too."""
    migrate.upgrade(db_url, "0001")
    _fill_0001(db_url)
    migrate.upgrade(db_url, "0005")
    records = [
        (950, "erase", "user", "console:21", "removed 4 messages, 3 reply_drafts"),
        (951, "prune", "account", "shop", "older than 30 days: removed 12 messages"),
    ]
    with _connect(db_url) as c:
        for row_id, action, kind, target, note in records:
            _insert(
                c,
                "moderation_actions",
                id=row_id,
                account_id=2,
                moderator="dpo",
                action=action,
                target_kind=kind,
                target=target,
                note=note,
            )
        _insert(c, "moderation_actions", id=952, account_id=2, moderator="m", action="ban")
    kept = "SELECT id, action, target_kind, target, note FROM moderation_actions WHERE id >= 950"

    migrate.downgrade(db_url, "0004")

    assert _rows(db_url, kept + " ORDER BY id") == records  # the ban row went, these stayed
    with pytest.raises(IntegrityError), _connect(db_url) as c:  # 0004's other actions only
        _insert(c, "moderation_actions", account_id=2, moderator="x", action="ban")
    migrate.upgrade(db_url)
    assert _rows(db_url, kept + " ORDER BY id") == records
    migrate.check_drift(db_url)
