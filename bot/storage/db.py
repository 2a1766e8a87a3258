"""Engine and session factory. Nothing here connects or creates tables at import time.

SQLite is tuned for two writers (the service and the CLI at once): WAL journal, a busy timeout
and foreign keys on, set on every new connection. Within one process, SQLite units of work take
turns on a lock (see `_sqlite_turns`) instead of on SQLite's busy handler.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 15_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, open transactions (see _sqlite_begin): pysqlite's own lazy
    # BEGIN breaks SAVEPOINT and makes reads before the first write run outside the transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Switching a new file to WAL needs a moment of exclusive access, and SQLite answers
    "database is locked" at once, without its busy handler, when another process (the
    service and the CLI starting together) holds the file then: wait and try again."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front, so two processes writing at once queue on the
    # busy timeout instead of failing with "database is locked" when a reader upgrades.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for `url`, with the SQLite pragmas wired in."""
    # Statement parameters hold message texts; keep them out of error messages and tracebacks,
    # which end up in logs.
    kwargs.setdefault("hide_parameters", True)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(
                url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
                **kwargs,
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = create_engine(url, pool_pre_ping=True, **kwargs)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(
            f"AUTOREPLY_DATABASE_URL={url!r} is not a usable SQLAlchemy URL ({exc}); use "
            "sqlite:///./autoreply.db or postgresql+psycopg://user@host:5432/dbname"
        ) from exc
    return engine


_SQLITE_TURNS: dict[str, threading.RLock] = {}
_SQLITE_TURNS_GUARD = threading.Lock()


def _sqlite_turns(url: str) -> threading.RLock:
    """One lock per SQLite URL in this process.

    Every SQLite unit of work starts with BEGIN IMMEDIATE, so they run one at a time anyway.
    Left to SQLite, the waiters poll on the busy handler, whose sleeps grow to 100 ms: a burst of
    16 messages stored from worker threads then reached the batcher over ~300 ms and missed one
    batch. A lock wakes the next writer as soon as the last one commits. Re-entrant, so a session
    opened inside another on the same thread behaves as before. Other processes still meet the
    busy handler.
    """
    with _SQLITE_TURNS_GUARD:
        return _SQLITE_TURNS.setdefault(url, threading.RLock())


class Database:
    """Holds one engine and hands out sessions, one per unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._turns: AbstractContextManager[object] = (
            _sqlite_turns(url) if url.startswith("sqlite") else nullcontext()
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """`with db.session() as s:` commits on success, rolls back on error."""
        with self._turns:
            session = self._factory()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    def dispose(self) -> None:
        self.engine.dispose()
