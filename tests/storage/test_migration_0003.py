"""Revision 0003 (draft_candidates) on a database that holds drafts: up, use, down, up.

The scenario of test_migration_0002 (two accounts, drafts in every state, audit rows, outbox
rows) is migrated to 0002 first; 0003 must leave every one of those rows as it was, both ways.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.storage import migrate
from tests.storage.test_migration_0002 import TABLES, _connect, _fill_0001, _insert, _snapshot


def _at_0002_with_drafts(url: str) -> dict[str, list[dict[str, object]]]:
    migrate.upgrade(url, "0001")
    _fill_0001(url)
    migrate.upgrade(url, "0002")
    return _snapshot(url)


def _candidates(url: str) -> list[tuple[object, ...]]:
    with _connect(url) as c:
        rows = c.execute(
            text("SELECT draft_id, rank, text, score, new_tokens, dropped FROM draft_candidates")
        )
        return sorted(tuple(row) for row in rows)


def _tables(url: str) -> set[str]:
    with _connect(url) as c:
        if c.dialect.name == "sqlite":
            rows = c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = c.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows}


def test_upgrade_keeps_every_draft_and_adds_an_empty_table(db_url: str) -> None:
    before = _at_0002_with_drafts(db_url)

    migrate.upgrade(db_url, "0003")

    assert _snapshot(db_url) == before
    assert _candidates(db_url) == []  # old drafts were drafted from one sample
    migrate.upgrade(db_url)  # later revisions apply on top and match the models
    migrate.check_drift(db_url)


def test_candidates_follow_their_draft_and_downgrade_drops_only_them(db_url: str) -> None:
    before = _at_0002_with_drafts(db_url)
    migrate.upgrade(db_url, "0003")

    with _connect(db_url) as c:
        for draft_id, rank, words, score, dropped in [
            (5, 0, "We will check.", -0.9, None),
            (5, 1, "ok ok ok ok", -0.4, "repetitive"),
            (5, 2, "", -2.0, "a_later_reason"),  # no CHECK: new reasons need no migration
            (3, 0, "Sorry!", -1.2, None),
        ]:
            _insert(
                c,
                "draft_candidates",
                draft_id=draft_id,
                rank=rank,
                text=words,
                raw_text=words,
                score=score,
                dropped=dropped,
            )
    assert _candidates(db_url) == [
        (3, 0, "Sorry!", -1.2, 0, None),
        (5, 0, "We will check.", -0.9, 0, None),
        (5, 1, "ok ok ok ok", -0.4, 0, "repetitive"),
        (5, 2, "", -2.0, 0, "a_later_reason"),
    ]
    with pytest.raises(IntegrityError), _connect(db_url) as c:  # one candidate per rank
        _insert(c, "draft_candidates", draft_id=5, rank=1, text="", raw_text="", score=0.0)
    with _connect(db_url) as c:  # foreign keys on: the delete cascades
        c.execute(text("DELETE FROM reply_drafts WHERE id = 3"))
    assert [row[:2] for row in _candidates(db_url)] == [(5, 0), (5, 1), (5, 2)]

    migrate.downgrade(db_url, "0002")

    assert migrate.current(db_url) == "0002"
    assert "draft_candidates" not in _tables(db_url)
    after = _snapshot(db_url)
    for table in TABLES:
        if table == "reply_drafts":
            assert after[table] == [row for row in before[table] if row["id"] != 3]
        elif table == "moderation_actions":  # the audit row of draft 3 outlives it (0002)
            assert [row["id"] for row in after[table]] == [row["id"] for row in before[table]]
        else:
            assert after[table] == before[table], table

    migrate.upgrade(db_url)
    assert _candidates(db_url) == []
    migrate.check_drift(db_url)
