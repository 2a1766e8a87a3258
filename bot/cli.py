"""`autoreply` command line (Typer). Also `python -m bot`.

Imports stay inside the commands: `classify` must start fast and never import torch, and the
queue verbs should not pay for the model either.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.errors import AutoreplyError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.storage.db import Database

app = typer.Typer(
    help="autoreply: drafts replies to social-media messages, sends them or queues them for "
    "a moderator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)
queue_app = typer.Typer(help="The moderators' review queue.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(queue_app, name="queue")


def _settings() -> Settings:
    from bot.config import load_settings
    from bot.logs import setup_logging

    settings = load_settings()
    secrets = [
        secret.get_secret_value()
        for secret in (settings.telegram_token, settings.telegram_webhook_secret)
        if secret is not None
    ]
    setup_logging(settings.log_level, secrets)
    return settings


# --- service ------------------------------------------------------------------------------


@app.command()
def run() -> None:
    """Start every configured channel (the console when no platform is configured)."""
    import asyncio

    from bot.channels.registry import build_channels
    from bot.service import Service

    settings = _settings()
    channels = build_channels(settings, stdin=sys.stdin.buffer, stdout=sys.stdout)
    asyncio.run(Service(settings, channels).run())


@app.command()
def chat() -> None:
    """Chat with the bot on stdin/stdout: one output line per input line.

    Prints the reply, `[queued for review] <draft>` or `[ignored: <reason>]`. Every turn is
    stored in the database. On a terminal it is an interactive prompt (/quit to leave).
    """
    import asyncio

    from bot.channels.console import ConsoleChannel
    from bot.service import Service

    settings = _settings()
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing for input())
    channel = ConsoleChannel(
        account=settings.account, source=sys.stdin.buffer, out=sys.stdout, interactive=interactive
    )
    asyncio.run(Service(settings, [channel]).run())


@app.command()
def classify(
    file: Annotated[
        Path | None,
        typer.Argument(help="Text file, one message per line; stdin when omitted.", dir_okay=False),
    ] = None,
) -> None:
    """Classify messages: one JSON object per input line (intent, sentiment, safety)."""
    # classify_file starts the toxicity model's worker process before anything else, so its
    # slow import overlaps with reading input and with the lexical work (start-up counts).
    from bot.classify_cmd import classify_file

    classify_file(None if file is None else str(file))


@app.command()
def bench(
    which: Annotated[
        str, typer.Argument(help="classify, telegram or all.", case_sensitive=False)
    ] = "all",
    lines: Annotated[int, typer.Option(help="Lines for the classify benchmark.")] = 10_000,
    messages: Annotated[int, typer.Option(help="Mentions for the Telegram benchmark.")] = 1000,
    chats: Annotated[int, typer.Option(help="Chats for the Telegram benchmark.")] = 50,
    model: Annotated[
        str | None,
        typer.Option(help="Model for the Telegram benchmark (default: tiny test model)."),
    ] = None,
) -> None:
    """Run the benchmarks side by side with their baselines (see docs/PERFORMANCE.md)."""
    from bot.errors import InputError

    if which not in ("classify", "telegram", "all"):
        raise InputError(f"unknown benchmark {which!r}; choose classify, telegram or all")
    try:
        from benchmarks import classify_bench, telegram_bench
    except ImportError as exc:
        raise InputError(
            "the benchmarks ship with the source checkout; run this from a clone installed with "
            "`pip install -e .`"
        ) from exc
    if which in ("classify", "all"):
        command = [sys.executable, "-m", "bot", "classify"]  # the real CLI, start-up included
        typer.echo(classify_bench.format_table(classify_bench.run(lines=lines, command=command)))
    if which in ("telegram", "all"):
        telegram_bench.run(model, messages, chats)


# --- database -----------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Migrate the database up to REVISION (default: head)."""
    from bot.storage import migrate

    settings = _settings()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {migrate.current(settings.database_url) or 'base'}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
) -> None:
    """Migrate the database down to REVISION (base drops every table)."""
    from bot.storage import migrate

    settings = _settings()
    migrate.downgrade(settings.database_url, revision)
    typer.echo(f"database at {migrate.current(settings.database_url) or 'base'}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's revision and whether it is at head."""
    from bot.storage import migrate

    settings = _settings()
    current = migrate.current(settings.database_url)
    head = migrate.head()
    state = "up to date" if current == head else f"head is {head}; run `autoreply db upgrade`"
    typer.echo(f"{current or 'base (empty)'} ({state})")


# --- queue --------------------------------------------------------------------------------


def _queue_db() -> Database:
    from bot.storage import migrate
    from bot.storage.db import Database

    settings = _settings()
    migrate.ensure_schema(settings.database_url)
    return Database(settings.database_url)


def _moderator(by: str | None) -> str:
    import getpass

    if by:
        return by
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Moderator name for the audit trail (default: cli:$USER)."),
]


@queue_app.command("list")
def queue_list(
    all_: Annotated[bool, typer.Option("--all", help="Include handled drafts.")] = False,
    unknown: Annotated[
        bool, typer.Option("--unknown", help="List replies whose delivery is in doubt.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List drafts waiting for review (or, with --unknown, replies in doubt)."""
    from bot import moderation
    from bot.queue_view import print_items, print_unknown

    db = _queue_db()
    if unknown:
        print_unknown(moderation.in_doubt(db, limit), as_json=as_json)
    else:
        print_items(moderation.list_queue(db, include_all=all_, limit=limit), as_json=as_json)


@queue_app.command("show")
def queue_show(draft_id: int) -> None:
    """Show one draft in full, with its message, analysis and audit trail."""
    from bot import moderation
    from bot.queue_view import print_detail

    item, trail = moderation.show(_queue_db(), draft_id)
    print_detail(item, trail)


@queue_app.command("approve")
def queue_approve(draft_id: int, by: ByOption = None) -> None:
    """Approve a draft: it is sent as it stands."""
    from bot import moderation
    from bot.queue_view import after_action

    db = _queue_db()
    after_action(db, moderation.approve(db, draft_id, moderator=_moderator(by)))


@queue_app.command("edit")
def queue_edit(
    draft_id: int,
    text: Annotated[str, typer.Argument(help="The reply to send instead; '-' reads stdin.")],
    by: ByOption = None,
) -> None:
    """Replace a draft's text and send it."""
    from bot import moderation
    from bot.queue_view import after_action

    if text == "-":
        text = sys.stdin.read()
    db = _queue_db()
    after_action(db, moderation.edit(db, draft_id, text, moderator=_moderator(by)))


@queue_app.command("reject")
def queue_reject(
    draft_id: int,
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    by: ByOption = None,
) -> None:
    """Reject a draft: nothing is sent."""
    from bot import moderation
    from bot.queue_view import after_action

    db = _queue_db()
    after_action(db, moderation.reject(db, draft_id, moderator=_moderator(by), reason=reason))


def main() -> None:
    try:
        app()
    except AutoreplyError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
