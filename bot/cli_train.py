"""`autoreply train reply|classifier|preference`: train adapters from exported or given data.

Each command imports its trainer inside the function, so `autoreply --help` and the queue verbs
never load torch, peft or TRL. A trained adapter is registered as a candidate; `autoreply
adapters eval` and `promote` decide whether it serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

train_app = typer.Typer(
    help="Train LoRA adapters (replies, classifier heads, preferences) from logged data.",
    no_args_is_help=True,
)


@train_app.command("nightly")
def train_nightly(
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account (default: every one).")
    ] = None,
) -> None:
    """Run the nightly retraining now, once: export, then train, evaluate and promote if
    better, for each drafting account with enough new examples (the service's nightly job)."""
    import asyncio

    from bot.cli import _config
    from bot.storage import migrate
    from bot.storage.db import Database
    from bot.storage.leases import new_holder
    from training.schedule import NightlyRunner

    settings, accounts = _config()
    if account is not None:
        accounts.get(account)  # an unknown name stops here, listing the configured ones
    migrate.ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    try:
        runner = NightlyRunner(db, settings, accounts.all, holder=new_holder("cli"))
        outcomes = asyncio.run(runner.run(only=account))
    finally:
        db.dispose()
    if outcomes is None:
        typer.echo(
            "error: another process is running the nightly retraining (it holds the 'retrain' "
            "lease); wait for it, see `autoreply train runs`",
            err=True,
        )
        raise typer.Exit(1)
    if not outcomes:
        typer.echo("nothing to train: no drafting account (mode off, or no such account)")
    for outcome in outcomes:
        typer.echo(f"{outcome.account}: {outcome.status} (run {outcome.run_id}): {outcome.detail}")
    if any(o.status in ("failed", "aborted") for o in outcomes):
        raise typer.Exit(1)


@train_app.command("runs")
def train_runs(
    account: Annotated[str | None, typer.Option("--account", help="Only this account.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many, newest first.")] = 20,
) -> None:
    """Recent training runs: when, which account, how they ended and why."""
    from bot.cli import _config
    from bot.storage import training_runs
    from bot.storage.db import Database

    settings, _ = _config()
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            rows = training_runs.recent(s, account=account, limit=limit)
    finally:
        db.dispose()
    if not rows:
        typer.echo("no training runs yet; start one with `autoreply train nightly`")
        return
    for run in rows:
        started = run.started_at.strftime("%Y-%m-%d %H:%M") if run.started_at else "-"
        status = "skipped" if run.skipped else run.status
        why = run.metrics.get("skipped") or run.error or run.metrics.get("reason") or ""
        first_line = str(why).splitlines()[0] if why else ""
        typer.echo(
            f"{run.id:>5} {started} {run.account or '-':<16} {run.kind:<8} {status:<9} "
            f"{run.adapter or '-':<24} {first_line[:100]}"
        )


@train_app.command("classifier")
def classifier(
    task: Annotated[str, typer.Option(help="intent, sentiment or safety.")],
    account: Annotated[
        str | None, typer.Option(help="Account name (default: the default account).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help='JSON lines {"text", "label"} (default: the account\'s exported labels).',
            dir_okay=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the head here instead of registering it.", file_okay=False),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training rows.")] = 3,
    lr: Annotated[float, typer.Option(min=1e-7, help="AdamW learning rate.")] = 1e-3,
    max_length: Annotated[int, typer.Option(min=2, help="Tokens per text (the rest is cut).")] = 64,
    seed: Annotated[int, typer.Option(help="Split, shuffle and initialisation seed.")] = 0,
    lora_layers: Annotated[
        int, typer.Option(min=0, help="LoRA on the last N blocks only (0: all; fewer is faster).")
    ] = 8,
) -> None:
    """Train a classifier head (LoRA, sequence classification) and register it as a candidate.

    The head is calibrated (temperature scaling on a stratified validation split) and saved in
    the account's next registry slot; `autoreply adapters promote NAME` makes it serve.
    """
    from bot.cli import _config
    from bot.errors import InputError
    from training.train_classifier import HeadConfig, train_classifier

    tasks = ("intent", "sentiment", "safety")
    if task not in tasks:
        raise InputError(f"unknown task {task!r}; use --task {' | '.join(tasks)}")
    settings, _ = _config()
    config = HeadConfig(
        task=task,
        epochs=epochs,
        lr=lr,
        max_length=max_length,
        seed=seed,
        lora_layers=lora_layers,
    )
    result = train_classifier(settings, config, account=account, data=data, out=out)
    m = result.metrics
    where = result.version.name if result.version else str(result.path)
    typer.echo(
        f"{where}: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, macro-recall "
        f"{m['macro_recall']:.3f} on {m['n_val']} validation rows; ECE {m['ece']:.3f} -> "
        f"{m['ece_calibrated']:.3f} (T = {m['temperature']:.2f}); {m['steps']} steps in "
        f"{m['train_seconds']:.0f} s"
    )
    if result.version:
        typer.echo(f"promote it with: autoreply adapters promote {result.version.name}")


@train_app.command("reply")
def reply(
    account: Annotated[
        str | None, typer.Option(help="Account name (default: the default account).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only replies moderated since this date (YYYY-MM-DD).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="SFT .jsonl file (default: a fresh export).", dir_okay=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the adapter here instead of registering it.", file_okay=False),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training replies.")] = 3,
    lr: Annotated[float, typer.Option(min=1e-7, help="AdamW learning rate.")] = 2e-4,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per micro-batch.")] = 8,
    grad_accum: Annotated[int, typer.Option(min=1, help="Micro-batches per step.")] = 1,
    seed: Annotated[int, typer.Option(help="Split, order and initialisation seed.")] = 0,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many optimizer steps.")
    ] = None,
    patience: Annotated[
        int, typer.Option(min=1, help="Evaluations without a better validation loss to stop.")
    ] = 2,
    lora_targets: Annotated[
        str | None,
        typer.Option(help="Comma-separated module names to wrap (default: the model's preset)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the interrupted run in this directory (its data and options).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Train ACCOUNT's reply adapter (LoRA on the reply tokens) and register it as a candidate.

    Prompts are rendered exactly as the drafter renders them. The adapter goes into the
    account's next registry slot; `autoreply adapters eval NAME` compares it with the one that
    serves. An interrupted run continues with `--resume DIR`.
    """
    from bot.cli import _config
    from bot.storage.db import Database
    from training.export import parse_since
    from training.loop import LoopConfig
    from training.train_reply import LoraSettings, ReplyTrainConfig, train_reply

    settings, accounts = _config()
    name = accounts.get(account).name
    targets = tuple(t.strip() for t in (lora_targets or "").split(",") if t.strip()) or None
    config = ReplyTrainConfig(
        loop=LoopConfig(
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            grad_accum=grad_accum,
            seed=seed,
            max_steps=max_steps,
            patience=patience,
        ),
        lora=LoraSettings(targets=targets),
    )
    if resume is not None:
        typer.echo(f"resuming {resume} with the data and options it started with")
    db = Database(settings.database_url)
    try:
        result = train_reply(
            settings,
            name,
            db=db,
            data=data,
            since=parse_since(since) if since else None,
            out=out,
            config=config,
            resume=resume,
        )
    except KeyboardInterrupt:
        typer.echo(
            "\nstopped; nothing was registered. Continue from the last checkpoint with "
            "`autoreply train reply --resume DIR` (DIR: the directory logged at the start)",
            err=True,
        )
        raise typer.Exit(130) from None
    finally:
        db.dispose()
    typer.echo(_reply_summary(result.metrics))
    if result.adapter is not None:
        typer.echo(f"registered {result.adapter.name} (candidate) in {result.out_dir}")
        typer.echo(f"next: autoreply adapters eval {result.adapter.name}")
    else:
        typer.echo(f"saved to {result.out_dir} (not registered: --out was given)")


def _reply_summary(m: dict[str, object]) -> str:
    def num(key: str, spec: str) -> str:
        value = m.get(key)
        return format(value, spec) if isinstance(value, int | float) else "-"

    return (
        f"{num('train_examples', 'd')} replies to train on, {num('val_examples', 'd')} to "
        "validate; "
        f"{num('steps', 'd')} steps in {num('train_seconds', '.0f')} s at "
        f"{num('tokens_per_s', ',.0f')} tokens/s; validation loss {num('base_val_loss', '.3f')} "
        f"-> {num('val_loss', '.3f')} (perplexity {num('base_val_perplexity', '.2f')} -> "
        f"{num('val_perplexity', '.2f')})"
    )


@train_app.command("preference")
def preference(
    account: Annotated[
        str | None, typer.Option(help="Account name (default: the default account).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Preference .jsonl file (default: a fresh export).", dir_okay=False),
    ] = None,
    start_from: Annotated[
        str | None,
        typer.Option("--from", help="Reply adapter to start from (default: the active one)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the adapter here instead of registering it.", file_okay=False),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the pairs.")] = 1,
    lr: Annotated[float, typer.Option(min=1e-9, help="AdamW learning rate.")] = 2e-5,
    beta: Annotated[float, typer.Option(min=1e-6, help="DPO beta: how far it may move.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Order and dropout seed.")] = 0,
) -> None:
    """Tune ACCOUNT's reply adapter on the moderators' choices (DPO) and register the result.

    Starts from the active reply adapter (or --from NAME), which also serves as the frozen
    reference; the result is a reply candidate whose parent is that adapter. Needs the
    training extra: pip install -e '.[train]'.
    """
    from bot.cli import _config
    from bot.storage.db import Database
    from training.train_preference import PreferenceConfig, train_preference

    settings, accounts = _config()
    name = accounts.get(account).name
    config = PreferenceConfig(epochs=epochs, lr=lr, beta=beta, seed=seed)
    db = Database(settings.database_url)
    try:
        result = train_preference(
            settings, name, db=db, data=data, start_from=start_from, out=out, config=config
        )
    finally:
        db.dispose()
    m = result.metrics

    def num(key: str, spec: str) -> str:
        value = m.get(key)
        return format(value, spec) if isinstance(value, int | float) else "-"

    typer.echo(
        f"{m['pairs']} pairs from {result.parent}: DPO loss {num('dpo_loss', '.4f')}, reward "
        f"accuracy {num('reward_accuracy', '.2f')}, margin {num('reward_margin', '.3f')}, "
        f"{num('time_s', '.0f')} s"
    )
    if result.adapter is not None:
        typer.echo(f"registered {result.adapter.name} (candidate, parent {result.parent})")
        typer.echo(f"next: autoreply adapters eval {result.adapter.name}")
    else:
        typer.echo(f"saved to {result.out_dir} (not registered: --out was given)")
