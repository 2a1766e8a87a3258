"""`autoreply` command line (Typer). Also `python -m bot`.

Imports stay inside the commands: `classify` must start fast and never import torch, and the
queue verbs should not pay for the model either.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli_adapters import adapters_app
from bot.cli_analytics import analytics_app
from bot.cli_data import export, labels_app
from bot.cli_moderation import chats_app, queue_cancel, queue_pending, queue_reply, users_app
from bot.cli_privacy import db_prune, erase_user
from bot.cli_train import train_app
from bot.cli_web import users_add, users_link, users_list, users_passwd, users_remove, web
from bot.errors import AutoreplyError

if TYPE_CHECKING:
    from bot.accounts import Accounts
    from bot.config import Settings
    from bot.domain import Actor
    from bot.moderation import ModerationService
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
accounts_app = typer.Typer(help="The accounts this service speaks for.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(queue_app, name="queue")
app.add_typer(accounts_app, name="accounts")
app.add_typer(train_app, name="train")
app.add_typer(adapters_app, name="adapters")
app.add_typer(labels_app, name="labels")
app.command()(export)
app.add_typer(users_app, name="users")
app.add_typer(chats_app, name="chats")
app.add_typer(analytics_app, name="analytics")
for verb, command in (("reply", queue_reply), ("pending", queue_pending), ("cancel", queue_cancel)):
    queue_app.command(verb)(command)
app.command("erase-user")(erase_user)
app.command()(web)
users_app.command("add")(users_add)
users_app.command("list")(users_list)
users_app.command("remove")(users_remove)
users_app.command("passwd")(users_passwd)
users_app.command("link")(users_link)
db_app.command("prune")(db_prune)

AccountOption = Annotated[
    str | None,
    typer.Option("--account", help="Account name (default: the default account)."),
]


def _settings() -> Settings:
    return _config()[0]


def _config() -> tuple[Settings, Accounts]:
    """Settings and accounts; a bad config stops here with one line naming what to fix."""
    from bot.accounts import load_accounts
    from bot.config import load_settings
    from bot.logs import setup_logging

    settings = load_settings()
    accounts = load_accounts(settings)
    setup_logging(settings.log_level, list(accounts.secrets))
    return settings, accounts


# --- service ------------------------------------------------------------------------------


@app.command()
def run(
    web: Annotated[
        bool,
        typer.Option(
            "--web", help="Serve the dashboard too, in this process (AUTOREPLY_WEB_HOST/PORT)."
        ),
    ] = False,
) -> None:
    """Start every configured channel (the console when no platform is configured)."""
    import asyncio

    from bot.channels.registry import build_channels
    from bot.service import Service

    settings, accounts = _config()
    channels = build_channels(accounts.all, stdin=sys.stdin.buffer, stdout=sys.stdout)
    if not web:
        asyncio.run(Service(settings, accounts.all, channels).run())
        return
    from bot.web.metrics import PrometheusEvents
    from bot.web.serve import serving_in_service

    events = PrometheusEvents()  # the pipeline's counters, shown on this process's /metrics
    serving = serving_in_service(settings, events)  # binds now: a taken port fails here
    asyncio.run(Service(settings, accounts.all, channels, events=events, web=serving).run())


@app.command()
def chat(account: AccountOption = None) -> None:
    """Chat with the bot on stdin/stdout, as one account: one output line per input line.

    Prints the reply, `[queued for review] <draft>` or `[ignored: <reason>]`. Every turn is
    stored in the database, under the account's console (`console-<name>` for a Telegram
    account). On a terminal it is an interactive prompt (/quit to leave).
    """
    import asyncio

    from bot.channels.console import ConsoleChannel
    from bot.service import Service

    settings, accounts = _config()
    console = accounts.get(account).console()
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing for input())
    channel = ConsoleChannel(
        account=console.name, source=sys.stdin.buffer, out=sys.stdout, interactive=interactive
    )
    asyncio.run(Service(settings, [console], [channel]).run())


@app.command()
def classify(
    file: Annotated[
        Path | None,
        typer.Argument(help="Text file, one message per line; stdin when omitted.", dir_okay=False),
    ] = None,
    account: AccountOption = None,
    lexical: Annotated[
        bool, typer.Option("--lexical", help="Use the lexical rules even where heads are promoted.")
    ] = False,
) -> None:
    """Classify messages: one JSON object per input line (intent, sentiment, safety).

    The account's promoted classifier heads answer where it has them (`autoreply train
    classifier`); the lexical rules answer the rest.
    """
    # classify_file starts the toxicity model's worker process before anything else, so its
    # slow import overlaps with reading input and with the lexical work (start-up counts).
    from bot.classify_cmd import classify_file

    classify_file(None if file is None else str(file), account=account, lexical=lexical)


@app.command()
def bench(
    which: Annotated[
        str,
        typer.Argument(
            help="classify, safety, telegram, accounts, generate, heads, train or all (heads and "
            "train are not in all).",
            case_sensitive=False,
        ),
    ] = "all",
    lines: Annotated[int, typer.Option(help="Lines for the classify benchmark.")] = 10_000,
    messages: Annotated[int, typer.Option(help="Mentions for the Telegram benchmark.")] = 1000,
    chats: Annotated[int, typer.Option(help="Chats for the Telegram benchmark.")] = 50,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model (hub id, directory or .gguf). Default: the tiny test model for "
            "telegram/accounts, GPT-2 124M with random weights for generate, a SmolLM2-135M "
            "shape with random weights for heads, GPT-2 124M with random weights for train."
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option(help="generate, train: a run under a minute or two.")
    ] = False,
    candidates: Annotated[
        int, typer.Option(min=1, max=16, help="generate: candidates per message (fallback rate).")
    ] = 4,
) -> None:
    """Run the benchmarks side by side with their baselines (see docs/PERFORMANCE.md)."""
    from bot.errors import InputError

    choices = ("classify", "safety", "telegram", "accounts", "generate", "heads", "train", "all")
    if which not in choices:
        raise InputError(f"unknown benchmark {which!r}; choose {', '.join(choices)}")
    try:
        from benchmarks import accounts_bench, classify_bench, generate_bench, telegram_bench
    except ImportError as exc:
        raise InputError(
            "the benchmarks ship with the source checkout; run this from a clone installed with "
            "`pip install -e .`"
        ) from exc
    if which in ("classify", "all"):
        command = [sys.executable, "-m", "bot", "classify"]  # the real CLI, start-up included
        typer.echo(classify_bench.format_table(classify_bench.run(lines=lines, command=command)))
    if which in ("safety", "all"):  # the rule-based input checks, in process, per message
        from benchmarks import safety_checks_bench

        typer.echo(safety_checks_bench.format_table(safety_checks_bench.run(lines)))
    if which in ("telegram", "all"):
        telegram_bench.run(model, messages, chats)
    if which in ("accounts", "all"):
        accounts_bench.run(model, min(messages, 400), max(1, chats // 5))
    if which in ("generate", "all"):
        generate_bench.run(model, quick=quick, candidates=candidates)
    if which == "heads":  # classifier heads on a 135M backbone (random weights unless --model)
        from benchmarks import heads_bench

        typer.echo(heads_bench.format_table(heads_bench.run(model)))
    if which == "train":  # LoRA reply training against a bare peft loop (minutes on CPU)
        from benchmarks import train_bench

        train_bench.run(model, quick=quick)


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


def _moderation() -> tuple[ModerationService, Settings, Accounts]:
    """The moderation service as the CLI uses it: the safety gate loads only for an edit, and
    console accounts' replies are delivered at once (no service runs for them)."""
    from bot.storage import migrate
    from bot.storage.db import Database

    settings, accounts = _config()
    migrate.ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    return moderation_over(db, settings, accounts), settings, accounts


def moderation_over(db: Database, settings: Settings, accounts: Accounts) -> ModerationService:
    """The moderation service outside `autoreply run` (the CLI, `autoreply web`)."""
    from bot.local_delivery import console_wake
    from bot.moderation import DraftChecker, ModerationService

    def gate() -> DraftChecker:
        from bot.safety.gate import SafetyGate

        return SafetyGate.from_settings(settings)

    # A label correction must use the labels of the draft's account (consoles share them).
    intents = {n: a.intent_labels for a in accounts.all for n in (a.name, a.console().name)}
    contexts = {n: a.check_context() for a in accounts.all for n in (a.name, a.console().name)}
    return ModerationService(
        db, gate=gate, wake=console_wake(db), intent_labels=intents, contexts=contexts
    )


def _actor(by: str | None) -> Actor:
    """Whoever runs the CLI has the database itself, so may act on every account."""
    import getpass

    from bot.domain import Actor, ActorKind, ActorRole

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "cli"
    display = by or f"cli:{user}"
    return Actor(ActorKind.CLI, user, display, ActorRole.OPERATOR, accounts=None)


ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Moderator name for the audit trail (default: cli:$USER)."),
]


@queue_app.command("list")
def queue_list(
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            help="Account name, or 'all' (default: the default account and its console).",
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include handled drafts.")] = False,
    unknown: Annotated[
        bool, typer.Option("--unknown", help="List replies whose delivery is in doubt.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List drafts waiting for review (or, with --unknown, replies in doubt)."""
    from bot.queue_view import print_items, print_unknown

    service, _, accounts = _moderation()
    actor = _actor(None)
    scope: tuple[str, ...] | None = None
    if account is None:  # the default account, with its `autoreply chat` console
        default = accounts.default
        scope = tuple(dict.fromkeys((default.name, default.console().name)))
    elif account != "all":
        scope = (account,)
    if unknown:
        print_unknown(service.in_doubt(actor, account=scope, limit=limit), as_json=as_json)
    else:
        items = service.list_queue(actor, account=scope, include_all=all_, limit=limit)
        print_items(items, as_json=as_json)


@queue_app.command("show")
def queue_show(draft_id: int) -> None:
    """Show one draft in full, with its message, analysis and audit trail."""
    from bot.queue_view import print_detail

    service, _, _ = _moderation()
    item, trail = service.show(_actor(None), draft_id)
    print_detail(item, trail)


@queue_app.command("approve")
def queue_approve(
    draft_id: int,
    override: Annotated[
        str | None,
        typer.Option(
            "--override",
            help="Approve a draft the safety gate blocked; the reason goes to the audit trail.",
        ),
    ] = None,
    by: ByOption = None,
) -> None:
    """Approve a draft: it is sent as it stands. Blocked drafts need --override REASON."""
    from bot.queue_view import after_action

    service, _, _ = _moderation()
    after_action(service.approve(_actor(by), draft_id, override=override))


@queue_app.command("edit")
def queue_edit(
    draft_id: int,
    text: Annotated[str, typer.Argument(help="The reply to send instead; '-' reads stdin.")],
    by: ByOption = None,
) -> None:
    """Replace a draft's text and send it (the new text is checked by the safety gate)."""
    from bot.queue_view import after_action

    if text == "-":
        text = sys.stdin.read()
    service, _, _ = _moderation()
    after_action(service.edit(_actor(by), draft_id, text))


@queue_app.command("reject")
def queue_reject(
    draft_id: int,
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    by: ByOption = None,
) -> None:
    """Reject a draft: nothing is sent."""
    from bot.queue_view import after_action

    service, _, _ = _moderation()
    after_action(service.reject(_actor(by), draft_id, reason=reason))


@queue_app.command("label")
def queue_label(
    draft_id: int,
    intent: Annotated[
        str | None, typer.Option(help="The message's true intent (one of its account's labels).")
    ] = None,
    sentiment: Annotated[
        str | None, typer.Option(help="The message's true sentiment: negative, neutral, positive.")
    ] = None,
    by: ByOption = None,
) -> None:
    """Correct the intent and/or sentiment of the message a draft answers (training data)."""
    service, _, _ = _moderation()
    typer.echo(service.relabel(_actor(by), draft_id, intent=intent, sentiment=sentiment).message)


# --- accounts -------------------------------------------------------------------------------


@accounts_app.command("list")
def accounts_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Each account: platform, mode, paused, adapter, health and queue depth."""
    from bot.accounts_view import print_accounts
    from bot.storage import accounts as account_store
    from bot.storage import migrate
    from bot.storage.db import Database

    settings, accounts = _config()
    migrate.ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            states = account_store.states(s)
    finally:
        db.dispose()
    print_accounts(accounts, states, as_json=as_json)


ChatOption = Annotated[
    str | None, typer.Option("--chat", help="Only this chat id (default: the whole account).")
]


@accounts_app.command("pause")
def accounts_pause(name: str, chat: ChatOption = None, by: ByOption = None) -> None:
    """Stop auto-replies for an account (or one of its chats); messages are still stored."""
    service, _, _ = _moderation()
    typer.echo(service.pause(_actor(by), name, chat_id=chat).message)


@accounts_app.command("resume")
def accounts_resume(name: str, chat: ChatOption = None, by: ByOption = None) -> None:
    """Start auto-replies again for an account (or one of its chats)."""
    service, _, _ = _moderation()
    typer.echo(service.resume(_actor(by), name, chat_id=chat).message)


def main() -> None:
    try:
        app()
    except AutoreplyError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
