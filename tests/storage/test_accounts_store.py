"""Binding configured names to accounts, which the database keys by the platform's own id."""

from __future__ import annotations

from sqlalchemy import select

from bot.storage import accounts as account_store
from bot.storage import models as m
from bot.storage.db import Database


def _names(db: Database) -> dict[tuple[str, str], str]:
    with db.session() as s:
        rows = s.execute(select(m.Account.platform, m.Account.handle, m.Account.name)).all()
    return {(platform, handle): name for platform, handle, name in rows}


def test_the_name_follows_the_config_and_history_follows_the_bot(migrated_db: Database) -> None:
    with migrated_db.session() as s:
        first = account_store.bind(s, "shop", "telegram", "111")
    with migrated_db.session() as s:  # the same bot, renamed in the config: same row
        renamed = account_store.bind(s, "store", "telegram", "111")
    assert renamed.id == first.id and renamed.name == "store"
    with migrated_db.session() as s:  # the name given to a new bot: the old one keeps its rows
        new = account_store.bind(s, "store", "telegram", "222")
    assert new.id != first.id
    assert _names(migrated_db) == {
        ("telegram", "111"): "telegram-111",
        ("telegram", "222"): "store",
    }


def test_a_displaced_name_never_collides(migrated_db: Database) -> None:
    with migrated_db.session() as s:
        account_store.bind(s, "shop", "telegram", "111")
        account_store.bind(s, "telegram-111", "telegram", "999")  # someone took that name
    with migrated_db.session() as s:
        account_store.bind(s, "shop", "telegram", "222")
    names = _names(migrated_db)
    assert names[("telegram", "222")] == "shop"
    assert names[("telegram", "999")] == "telegram-111"
    assert names[("telegram", "111")].startswith("telegram-") and len(set(names.values())) == 3


def test_states_count_the_queue_per_account(migrated_db: Database) -> None:
    with migrated_db.session() as s:
        account_store.bind(s, "shop", "telegram", "111")
        account_store.ensure(s, "console", "console-shop")
        account_store.set_health(s, "shop", "down", "token refused")
    with migrated_db.session() as s:
        states = {state.name: state for state in account_store.states(s)}
    assert set(states) == {"shop", "console-shop"}
    assert (states["shop"].health, states["shop"].health_note) == ("down", "token refused")
    assert states["shop"].health_at is not None and states["shop"].queued == 0
