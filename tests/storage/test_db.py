"""Engine set-up and the schema's guarantees, on both backends where they apply."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from bot.domain import ChatKind
from bot.errors import ConfigError, StorageError
from bot.storage import migrate
from bot.storage.db import SQLITE_BUSY_TIMEOUT_MS, Database
from bot.storage.models import (
    Account,
    Conversation,
    Direction,
    Message,
    ProcessedUpdate,
)


def _account_and_conversation(db: Database) -> tuple[int, int]:
    with db.session() as session:
        account = Account(name="shop", platform="telegram", handle="shop_bot")
        session.add(account)
        session.flush()
        conversation = Conversation(account_id=account.id, chat_id="42", kind=ChatKind.PRIVATE)
        session.add(conversation)
        session.flush()
        return account.id, conversation.id


def _message(account_id: int, conversation_id: int, platform_id: str | None, edit: int) -> Message:
    return Message(
        account_id=account_id,
        conversation_id=conversation_id,
        direction=Direction.INBOUND,
        platform_message_id=platform_id,
        edit_version=edit,
        text="hello",
    )


def test_sqlite_pragmas_on_a_file(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        with db.engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        db.dispose()


def test_two_engines_write_one_sqlite_file(sqlite_url: str) -> None:
    # The service and the CLI: two engines, each reading then writing in one transaction, the
    # pattern that fails with "database is locked" unless the write lock is taken up front.
    migrate.ensure_schema(sqlite_url)
    engines = [Database(sqlite_url), Database(sqlite_url)]
    account_id, _ = _account_and_conversation(engines[0])
    per_writer = 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def write(db: Database, offset: int) -> None:
        barrier.wait()
        try:
            for n in range(per_writer):
                with db.session() as session:
                    session.scalar(select(func.count()).select_from(ProcessedUpdate))
                    session.add(ProcessedUpdate(account_id=account_id, update_id=offset + n))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(db, i * 1000)) for i, db in enumerate(engines)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        with engines[1].session() as session:
            count = session.scalar(select(func.count()).select_from(ProcessedUpdate))
        assert count == per_writer * len(engines)
    finally:
        for db in engines:
            db.dispose()


def test_processed_update_is_taken_once(migrated_db: Database) -> None:
    account_id, _ = _account_and_conversation(migrated_db)
    with migrated_db.session() as session:
        session.add(ProcessedUpdate(account_id=account_id, update_id=7))
    with pytest.raises(IntegrityError), migrated_db.session() as session:
        session.add(ProcessedUpdate(account_id=account_id, update_id=7))


def test_message_unique_per_edit_version(migrated_db: Database) -> None:
    account_id, conversation_id = _account_and_conversation(migrated_db)
    with migrated_db.session() as session:
        session.add(_message(account_id, conversation_id, "100", 0))
        session.add(_message(account_id, conversation_id, "100", 1))  # an edit: allowed
        # Outbound rows have no platform id until sent; NULLs never collide.
        session.add(_message(account_id, conversation_id, None, 0))
        session.add(_message(account_id, conversation_id, None, 0))
    with pytest.raises(IntegrityError), migrated_db.session() as session:
        session.add(_message(account_id, conversation_id, "100", 1))


def test_check_constraint_rejects_unknown_enum_value(migrated_db: Database) -> None:
    # Raw SQL: the ORM would refuse the value before the database sees it.
    account_id, conversation_id = _account_and_conversation(migrated_db)
    with (
        pytest.raises(IntegrityError, match="ck_conversations_chat_kind"),
        migrated_db.session() as s,
    ):
        s.execute(
            text("INSERT INTO conversations (account_id, chat_id, kind) VALUES (:a, '43', 'dm')"),
            {"a": account_id},
        )
    with pytest.raises(IntegrityError, match="ck_messages_direction"), migrated_db.session() as s:
        s.execute(
            text(
                "INSERT INTO messages (account_id, conversation_id, direction, text) "
                "VALUES (:a, :c, 'sideways', 'hi')"
            ),
            {"a": account_id, "c": conversation_id},
        )


def test_server_defaults_fill_omitted_columns(migrated_db: Database) -> None:
    # Rows written by plain SQL (another tool, a hand fix) get the same defaults as the ORM's.
    with migrated_db.session() as session:
        session.execute(
            text("INSERT INTO accounts (name, platform, handle) VALUES ('raw', 'telegram', 'raw')")
        )
    with migrated_db.session() as session:
        account = session.scalars(select(Account).where(Account.handle == "raw")).one()
        conversation = Conversation(account_id=account.id, chat_id="1", kind=ChatKind.GROUP)
        session.add(conversation)
        session.flush()
        session.execute(
            text(
                "INSERT INTO messages (account_id, conversation_id, direction, text) "
                "VALUES (:a, :c, 'in', 'hi')"
            ),
            {"a": account.id, "c": conversation.id},
        )
    with migrated_db.session() as session:
        account = session.scalars(select(Account).where(Account.handle == "raw")).one()
        message = session.scalars(select(Message)).one()
    assert account.paused is False
    assert account.created_at is not None
    assert (message.edit_version, message.addressed) == (0, True)


@pytest.mark.parametrize(
    "url", ["not a url", "postgresql+nosuchdriver://u@localhost/db", "nosuchdb://x"]
)
def test_unusable_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="AUTOREPLY_DATABASE_URL"):
        Database(url)
    with pytest.raises(ConfigError, match="AUTOREPLY_DATABASE_URL"):
        migrate.ensure_schema(url)


def test_unreachable_postgres_says_what_to_do() -> None:
    # Port 1 refuses at once; no server needed.
    url = "postgresql+psycopg://bot:s3cret@127.0.0.1:1/autoreply"
    with pytest.raises(StorageError) as caught:
        migrate.ensure_schema(url)
    message = str(caught.value)
    assert "AUTOREPLY_DATABASE_URL" in message
    assert "PostgreSQL is running" in message
    assert "pg_isready -h 127.0.0.1 -p 1" in message
    assert "s3cret" not in message
    assert "\n" not in message


def test_missing_postgres_database_says_createdb(postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/autoreply_no_such_database"
    with pytest.raises(StorageError, match="createdb"):
        migrate.current(url)


def test_sqlite_in_a_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="folder exists and is writable"):
        migrate.ensure_schema(f"sqlite:///{tmp_path}/no/such/folder/autoreply.db")
