"""Alembic environment for autoreply (online mode only).

Where the database comes from, first match wins:
1. `config.attributes["connection"]`: an open connection handed in by bot.storage.migrate;
2. the `sqlalchemy.url` main option, set by bot.storage.migrate.alembic_config();
3. the autoreply settings (AUTOREPLY_DATABASE_URL, autoreply.toml, the default SQLite file),
   which is what the `alembic` command line uses.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text

from bot.config import load_settings
from bot.storage.migrate import MIGRATION_LOCK_KEY, migration_engine
from bot.storage.models import Base

config = context.config
target_metadata = Base.metadata

# alembic.ini's [loggers] are for the `alembic` command line; code that drives Alembic
# (the service, `autoreply db ...`) sets attributes["quiet"] and keeps its own logging.
if config.config_file_name is not None and not config.attributes.get("quiet"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations(connection: Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    on_version_apply = config.attributes.get("on_version_apply")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER constraints or types: batch mode recreates the table instead.
        render_as_batch=True,
        compare_type=True,
        compare_server_default=True,
        # bot.storage.db.make_engine lets SQLAlchemy issue BEGIN on SQLite, so DDL there is
        # transactional too: a failed migration leaves nothing half-done.
        transactional_ddl=True if is_sqlite else None,
        on_version_apply=on_version_apply,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Held until commit: a second process waits, then finds the schema at head.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        context.run_migrations()
        if is_sqlite:
            # migration_engine() turned foreign keys off for batch mode; verify them now.
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or load_settings().database_url
    engine = migration_engine(url)
    try:
        with engine.connect() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit(
        "offline (--sql) mode is not supported: SQLite batch migrations need a live database; "
        "run without --sql"
    )
run_migrations_online()
