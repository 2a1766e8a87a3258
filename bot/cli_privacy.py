"""`autoreply erase-user` and `autoreply db prune`: personal data out of the database, on
request and after the retention period. See bot/privacy.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from bot.storage.privacy import Removed


def erase_user(
    platform: Annotated[str, typer.Argument(help="The user's platform: telegram, console, ...")],
    user_id: Annotated[str, typer.Argument(help="The user's id on that platform.")],
    account: Annotated[
        str | None,
        typer.Option("--account", help="Only this account (default: every one that knows them)."),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Your name for the audit trail (default: cli:$USER).")
    ] = None,
) -> None:
    """Remove a user's messages, analyses, drafts and pending replies, and keep them out of
    every later training export (GDPR Art. 17). Audited; cannot be undone."""
    from bot import privacy
    from bot.cli import _actor, _config
    from bot.storage import migrate
    from bot.storage.db import Database

    settings, _ = _config()
    migrate.ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    try:
        removed = privacy.erase_user(db, _actor(by), platform, user_id, account)
    finally:
        db.dispose()
    for result in removed:
        typer.echo(f"erased {platform} user {user_id} in account {result.account!r}:")
        _print_counts(result)
    typer.echo(
        "They stay marked as erased: messages they send later are answered, but never used in "
        "training exports or as history in prompts."
    )


def db_prune(
    days: Annotated[
        int | None,
        typer.Option(
            "--days", min=1, help="Remove data older than this (default: AUTOREPLY_RETENTION_DAYS)."
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Your name for the audit trail (default: cli:$USER).")
    ] = None,
) -> None:
    """Remove messages, analyses, drafts and sent outbox rows older than N days. Drafts still
    queued for a moderator and replies not yet sent are kept; audit rows stay, without texts."""
    from bot import privacy
    from bot.cli import _actor, _config
    from bot.errors import InputError
    from bot.storage import migrate
    from bot.storage.db import Database

    settings, _ = _config()
    days = days or settings.retention_days
    if not days:
        raise InputError(
            "give --days N, or set AUTOREPLY_RETENTION_DAYS; nothing was removed (retention is "
            "off by default)"
        )
    migrate.ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    try:
        removed = privacy.prune(db, days, _actor(by))
    finally:
        db.dispose()
    if not removed:
        typer.echo("no accounts in the database yet: nothing to prune")
    for result in removed:
        typer.echo(f"account {result.account!r}, older than {days} days:")
        _print_counts(result)


def _print_counts(result: Removed) -> None:
    from bot.storage.privacy import COUNTED

    for table in COUNTED:
        if table in result.counts:  # pruning has no in-flight rows or notices to count
            typer.echo(f"  {table:<20} {result.counts[table]}")
