"""Revision 0004 (learning loop) on a database with adapters, runs and audit rows: up, use,
down, up. Existing rows keep their values; rows using the new values go back to what 0003
allows."""

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
    _snapshot,
)


def _at_0003(url: str) -> dict[str, list[dict[str, object]]]:
    migrate.upgrade(url, "0001")
    _fill_0001(url)
    migrate.upgrade(url, "0003")
    with _connect(url) as c:
        _insert(
            c,
            "adapters",
            id=1,
            name="old-reply",
            kind="reply",
            path="/srv/old",
            base_model="gpt2",
            metrics={},
            status="active",
        )
        _insert(
            c,
            "training_runs",
            id=1,
            kind="reply",
            status="succeeded",
            adapter_id=1,
            params={},
            metrics={},
        )
    return _snapshot(url)


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with _connect(url) as c:
        return [tuple(row) for row in c.execute(text(sql))]


def test_upgrade_keeps_rows_and_new_values_go_back_on_downgrade(db_url: str) -> None:
    before = _at_0003(db_url)
    migrate.upgrade(db_url, "0004")

    assert _snapshot(db_url) == before
    assert _rows(db_url, "SELECT name, account_id, version, parent_id FROM adapters") == [
        ("old-reply", None, 1, None)
    ]
    with _connect(db_url) as c:
        _insert(
            c,
            "adapters",
            id=2,
            account_id=1,
            name="default-reply-v2",
            kind="reply",
            version=2,
            path="/srv/v2",
            base_model="gpt2",
            metrics={},
            status="candidate",
            parent_id=1,
        )
        _insert(
            c,
            "training_runs",
            id=2,
            account_id=1,
            kind="reply",
            status="aborted",
            params={},
            metrics={},
        )
        _insert(
            c,
            "moderation_actions",
            id=900,
            account_id=1,
            moderator="op",
            action="promote",
            target_kind="adapter",
            target="default-reply-v2",
        )
        _insert(
            c, "label_examples", account_id=1, task="intent", text="hi", label="other", source="f"
        )
        _insert(c, "leases", name="retrain", holder="p1", acquired_at=T0, expires_at=T0)
    with pytest.raises(IntegrityError), _connect(db_url) as c:  # still a CHECK on run status
        _insert(c, "training_runs", id=3, kind="reply", status="sleeping", params={}, metrics={})

    migrate.downgrade(db_url, "0003")

    assert migrate.current(db_url) == "0003"
    assert _rows(db_url, "SELECT id, status FROM training_runs ORDER BY id") == [
        (1, "succeeded"),
        (2, "failed"),
    ]
    after = _snapshot(db_url)
    for table in TABLES:
        assert after[table] == before[table], table  # the promote audit row went

    migrate.upgrade(db_url)
    assert _rows(db_url, "SELECT count(*) FROM label_examples") == [(0,)]
    migrate.check_drift(db_url)
