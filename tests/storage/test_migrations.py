"""Migrations on both backends: up, drift check, down, up again, the CLI, concurrent starts."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, create_engine, inspect
from sqlalchemy.pool import NullPool

from bot.errors import StorageError
from bot.storage import migrate
from bot.storage.models import Base

APP_TABLES = set(Base.metadata.tables)


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _pg_leftovers(url: str) -> dict[str, list[str]]:
    """Enum types and any relation but the version table left in the public schema."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            enums = connection.exec_driver_sql(
                "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype = 'e'"
            )
            relations = connection.exec_driver_sql(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' "
                "AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc')"
            )
            return {
                "enum types": [row[0] for row in enums],
                "relations": [row[0] for row in relations],
            }
    finally:
        engine.dispose()


def test_upgrade_check_downgrade_upgrade(db_url: str) -> None:
    assert migrate.current(db_url) is None

    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head()
    assert _tables(db_url) >= APP_TABLES
    migrate.check_drift(db_url)

    migrate.downgrade(db_url, "base")
    assert migrate.current(db_url) is None
    assert _tables(db_url) == {"alembic_version"}
    if db_url.startswith("postgresql"):
        assert _pg_leftovers(db_url) == {"enum types": [], "relations": []}

    migrate.ensure_schema(db_url)
    assert migrate.current(db_url) == migrate.head()
    migrate.check_drift(db_url)


def _quoted(sql: str) -> list[str]:
    """The string literals in a CHECK's SQL: the allowed values of an enumeration."""
    return sorted(re.findall(r"'([^']*)'", sql))


def test_check_constraints_match_models(db_url: str) -> None:
    # Alembic's autogenerate does not compare CHECK constraints, so a new enum member without
    # a migration would pass `alembic check` and fail at INSERT. Compare names and values here.
    migrate.upgrade(db_url)
    expected = {
        (table.name, str(constraint.name)): _quoted(
            str(constraint.sqltext.compile(compile_kwargs={"literal_binds": True}))
        )
        for table in Base.metadata.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        inspector = inspect(engine)
        found = {
            (table, str(check["name"])): _quoted(check["sqltext"])
            for table in APP_TABLES
            for check in inspector.get_check_constraints(table)
        }
    finally:
        engine.dispose()
    assert found == expected


def test_check_drift_wants_upgrade_first(db_url: str) -> None:
    with pytest.raises(StorageError, match="autoreply db upgrade"):
        migrate.check_drift(db_url)


def test_check_drift_reports_a_difference(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE accounts ADD COLUMN stray INTEGER")
    finally:
        engine.dispose()
    with pytest.raises(StorageError, match=r"differs from the models.*stray"):
        migrate.check_drift(db_url)


def test_concurrent_starts_migrate_once(db_url: str) -> None:
    # The service and the CLI starting at once, as two processes: PostgreSQL serialises them on
    # an advisory lock, SQLite on BEGIN IMMEDIATE; the second finds the schema at head.
    code = "import sys; from bot.storage.migrate import ensure_schema; ensure_schema(sys.argv[1])"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url],
            cwd=migrate.REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [start.communicate(timeout=60)[0] for start in starts]
    assert [start.returncode for start in starts] == [0, 0], outputs
    assert migrate.current(db_url) == migrate.head()


def test_threads_in_one_process_take_turns(db_url: str) -> None:
    # Alembic's proxies are process-wide; migrate serialises its commands with a lock.
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)
    level_before = logging.getLogger("alembic").level

    def start() -> None:
        barrier.wait()
        try:
            migrate.ensure_schema(db_url)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert migrate.current(db_url) == migrate.head()
    assert logging.getLogger("alembic").level == level_before


def test_alembic_command_line(db_url: str) -> None:
    # The real CLI from the repository root, taking the URL from the autoreply settings.
    alembic = Path(sys.executable).with_name("alembic")
    env = {**os.environ, "AUTOREPLY_DATABASE_URL": db_url}

    def run(*args: str) -> str:
        result = subprocess.run(
            [str(alembic), *args],
            cwd=migrate.REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    run("upgrade", "head")
    assert "No new upgrade operations detected." in run("check")
    assert f"{migrate.head()} (head)" in run("current")
    assert migrate.current(db_url) == migrate.head()


def test_upgrade_is_quiet_but_logged(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    level_before = logging.getLogger("alembic").level
    migrate.ensure_schema(db_url)
    migrate.ensure_schema(db_url)  # already at head: nothing to say
    assert not [r for r in caplog.records if r.name.startswith("alembic")]
    applied = [r.getMessage() for r in caplog.records if r.name == migrate.__name__]
    scripts = ScriptDirectory.from_config(migrate.alembic_config(db_url))
    assert applied == [
        f"database schema upgraded: {script.down_revision or 'base'} -> {script.revision}"
        for script in reversed(list(scripts.walk_revisions()))
    ]
    assert logging.getLogger("alembic").level == level_before


def test_missing_scripts_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(migrate, "ALEMBIC_INI", tmp_path / "alembic.ini")
    with pytest.raises(StorageError, match=r"pip install -e \."):
        migrate.head()


def test_database_from_a_newer_version_is_named_as_such(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    finally:
        engine.dispose()
    for call in (migrate.ensure_schema, migrate.check_drift):
        with pytest.raises(StorageError, match="9999, which this version of autoreply does not"):
            call(db_url)


def test_unknown_target_revision_is_a_storage_error(db_url: str) -> None:
    migrate.upgrade(db_url)
    with pytest.raises(StorageError, match=r"Can't locate revision .*autoreply db current"):
        migrate.downgrade(db_url, "no-such-revision")


FAILING_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "fails"
down_revision = "{head}"


def upgrade():
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO accounts (name, platform, handle) VALUES ('n', 't', 'h')")
    raise RuntimeError("boom")
"""


def test_failed_migration_leaves_nothing_behind(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DDL is transactional on both backends (SQLite through make_engine's explicit BEGIN).
    migrate.upgrade(db_url)
    scripts = tmp_path / "alembic"
    shutil.copytree(migrate.SCRIPT_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrate.head()
    (scripts / "versions" / "9999_fails.py").write_text(FAILING_REVISION.format(head=head))
    monkeypatch.setattr(migrate, "SCRIPT_DIR", scripts)

    with pytest.raises(RuntimeError, match="boom"):
        migrate.upgrade(db_url)

    assert migrate.current(db_url) == head
    assert "half_done" not in _tables(db_url)
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM accounts").scalar() == 0
    finally:
        engine.dispose()
