"""`autoreply labels import` and `autoreply export`: labelled data in, training data out.

Label corrections of single messages are `autoreply queue label` (bot/cli.py), which goes
through the moderation service like every other moderator's action.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

labels_app = typer.Typer(help="Labelled examples for the classifiers.", no_args_is_help=True)


@labels_app.command("import")
def labels_import(
    file: Annotated[
        Path,
        typer.Argument(help='JSON lines, one {"text": ..., "label": ...} object each.'),
    ],
    task: Annotated[str, typer.Option("--task", help="intent, sentiment or safety.")],
    account: Annotated[
        str | None,
        typer.Option("--account", help="The account the labels are for (default: every one)."),
    ] = None,
) -> None:
    """Import labelled texts for one classifier task. Every line is checked first: a bad line
    stops the import, and nothing is written."""
    from bot import labels
    from bot.cli import _config
    from bot.errors import InputError, NotFoundError
    from bot.storage import accounts as account_store
    from bot.storage import labels as label_store
    from bot.storage import migrate
    from bot.storage.db import Database

    settings, accounts = _config()
    name = labels.check_task(task)
    chosen = (accounts.get(account),) if account else accounts.all
    intents = tuple(dict.fromkeys(label for a in chosen for label in a.intent_labels))
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {file} ({exc}); check the path (UTF-8 JSON lines)") from exc
    pairs = labels.read_jsonl(
        text.splitlines(),
        name,
        intent_labels=intents,
        safety_labels=tuple(settings.safety_label_verdicts),
        name=file.name,
    )
    migrate.ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            account_id = None
            if account is not None:
                state = account_store.by_name(s, account)
                if state is None:
                    raise NotFoundError(
                        f"account {account!r} has no row in the database yet; start the service "
                        "once (or import without --account: the labels then serve every account)"
                    )
                account_id = state.id
            added = label_store.import_rows(
                s,
                account_id=account_id,
                task=name,
                rows=[label_store.NewLabel(t, label) for t, label in pairs],
                source=f"file:{file.name}",
            )
    finally:
        db.dispose()
    scope = f"account {account!r}" if account else "every account"
    typer.echo(f"imported {added} {name} labels for {scope} ({len(pairs) - added} already there)")


def export(
    account: Annotated[
        str | None,
        typer.Option("--account", help="Only this account (default: every one in the database)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only drafts and labels from this date on (YYYY-MM-DD, UTC)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder to create (default: exports/<timestamp>/), one subfolder each."),
    ] = None,
) -> None:
    """Export moderated replies, preference pairs and labels as training data (JSON lines)."""
    from bot.cli import _config
    from bot.storage import migrate
    from bot.storage.db import Database
    from training.export import default_out_dir, export_accounts, parse_since

    settings, _ = _config()
    start = parse_since(since) if since else None
    folder = out if out is not None else default_out_dir(settings)
    migrate.ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    try:
        names = None if account is None else [account]
        results = export_accounts(db, settings, folder, accounts=names, since=start)
    finally:
        db.dispose()
    if not results:
        typer.echo("no accounts in the database yet: nothing to export")
    for result in results:
        counts = ", ".join(f"{n} {f.removesuffix('.jsonl')}" for f, n in result.counts.items())
        typer.echo(f"{result.account}: {counts} -> {result.out_dir} (data {result.data_hash[:12]})")
