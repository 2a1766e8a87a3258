"""`autoreply adapters list|show|eval|promote|rollback`: the operators' view of the registry.

No torch here except in `eval`, which loads models: listing and switching are database work,
and a running service picks a switch up by polling the registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from bot.domain import Actor

adapters_app = typer.Typer(
    help="Trained adapter versions per account: list, evaluate, promote, roll back.",
    no_args_is_help=True,
)

KindOption = Annotated[str, typer.Option("--kind", help="reply, intent, sentiment or safety.")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Operator name for the audit trail (default: $USER).")
]


def _operator(by: str | None) -> Actor:
    import getpass

    from training.registry import operator

    return operator(by or getpass.getuser())


@adapters_app.command("list")
def adapters_list(
    account: Annotated[str | None, typer.Option("--account", help="Only this account.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
) -> None:
    """Every version, newest first, with its status and headline metric."""
    from bot.cli import _config
    from bot.storage.db import Database
    from training import registry

    settings, accounts = _config()
    db = Database(settings.database_url)
    try:
        rows = registry.versions(db, account, kind)
    finally:
        db.dispose()
    pinned = {a.name: a.adapter for a in accounts.all if a.adapter}
    for name, path in sorted(pinned.items()):
        if account in (None, name):
            typer.echo(
                f"note: {name} has a pinned adapter in its config ({path}); it drafts with that, "
                "whatever the registry's active reply adapter is"
            )
    if not rows:
        typer.echo("no adapters yet; train one with `autoreply train reply` or `train classifier`")
        return
    typer.echo(f"{'name':<32} {'status':<10} {'created':<17} {'data':<10} headline")
    for row in rows:
        created = row.created_at.strftime("%Y-%m-%d %H:%M") if row.created_at else "-"
        typer.echo(
            f"{row.name:<32} {row.status:<10} {created:<17} {(row.data_hash or '-')[:8]:<10} "
            f"{_headline(row.metrics)}"
        )


def _headline(metrics: dict[str, object]) -> str:
    for key in ("perplexity", "macro_f1", "val_loss"):
        value = metrics.get(key)
        if isinstance(value, int | float):
            return f"{key} {value:.4g}"
    return "-"


@adapters_app.command("show")
def adapters_show(name: str) -> None:
    """One version: paths, data hash, config, metrics, parent."""
    from bot.cli import _config
    from bot.storage.db import Database
    from training import registry

    settings, _ = _config()
    db = Database(settings.database_url)
    try:
        row = registry.get(db, name)
    finally:
        db.dispose()
    typer.echo(f"{row.name}  ({row.kind} adapter of {row.account}, v{row.version}, {row.status})")
    typer.echo(f"path:       {row.path}")
    typer.echo(f"base model: {row.base_model}")
    typer.echo(f"data hash:  {row.data_hash or '-'}")
    typer.echo(f"parent:     {row.parent or '-'}")
    typer.echo(f"created:    {row.created_at}   promoted: {row.promoted_at or '-'}")
    typer.echo("config:     " + json.dumps(row.config, sort_keys=True))
    typer.echo("metrics:    " + json.dumps(row.metrics, sort_keys=True, default=str))


@adapters_app.command("eval")
def adapters_eval(
    name: str,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="JSONL to evaluate on (default: the candidate's own data)."),
    ] = None,
    promote: Annotated[
        bool, typer.Option("--promote", help="Promote it if it passes; reject it if not.")
    ] = False,
    by: ByOption = None,
) -> None:
    """Compare candidate NAME with its account's active adapter on held-out data and probes."""
    from bot.cli import _config
    from bot.storage.db import Database
    from training.evaluate import evaluate

    settings, accounts = _config()
    db = Database(settings.database_url)
    try:
        verdict = evaluate(
            db, settings, accounts, name, data=data, promote=promote, actor=_operator(by)
        )
    finally:
        db.dispose()
    typer.echo(verdict.table())
    if promote:
        typer.echo(f"{name} " + ("promoted" if verdict.promote else "rejected"))
    elif verdict.promote:
        typer.echo(f"next: autoreply adapters promote {name}")


@adapters_app.command("promote")
def adapters_promote(
    name: str,
    by: ByOption = None,
    note: Annotated[str | None, typer.Option("--note", help="Why, for the audit trail.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even though the eval gate said keep.")
    ] = False,
) -> None:
    """Make NAME the active version of its account and kind (the running service follows)."""
    from bot.cli import _config
    from bot.errors import InvalidStateError
    from bot.storage.db import Database
    from training import registry

    settings, _ = _config()
    db = Database(settings.database_url)
    actor = _operator(by)
    try:
        row = registry.get(db, name)
        refusal = registry.gate_refusal(row)
        if refusal is not None and not force:
            raise InvalidStateError(
                f"the eval gate kept the active adapter over {name}: {refusal}. "
                "Train a better one, or pass --force (and --note why) to promote it anyway"
            )
        if "eval" not in row.metrics:
            typer.echo(f"note: {name} was never evaluated; `autoreply adapters eval {name}`")
        promoted = registry.promote(db, name, actor, note)
    finally:
        db.dispose()
    typer.echo(
        f"{promoted.name} is now {promoted.account}'s active {promoted.kind} adapter; a running "
        f"service switches within {settings.registry_poll_s:g} s"
    )


@adapters_app.command("rollback")
def adapters_rollback(
    account: Annotated[str, typer.Argument(help="Account name.")],
    kind: KindOption = "reply",
    by: ByOption = None,
    note: Annotated[str | None, typer.Option("--note", help="Why, for the audit trail.")] = None,
) -> None:
    """Retire ACCOUNT's active adapter of KIND and restore the one before it."""
    from bot.cli import _config
    from bot.storage.db import Database
    from training import registry

    settings, _ = _config()
    db = Database(settings.database_url)
    actor = _operator(by)
    try:
        restored = registry.rollback(db, account, kind, actor, note)
    finally:
        db.dispose()
    if restored is None:
        fallback = "the base model" if kind == "reply" else "the lexical rules"
        typer.echo(f"rolled back: {account} has no active {kind} adapter now and uses {fallback}")
    else:
        typer.echo(f"rolled back: {account}'s active {kind} adapter is {restored.name} again")
