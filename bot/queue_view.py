"""Plain-text and JSON rendering of the review queue for the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

import typer

from bot.domain import AuditEntry, Candidate, OutboxRow, Outcome, QueueItem


def _short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _json_default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def print_items(items: Sequence[QueueItem], *, as_json: bool) -> None:
    if as_json:
        for item in items:
            # Listings do not load candidates; `queue show` prints them.
            row = {k: v for k, v in asdict(item).items() if k != "candidates"}
            typer.echo(json.dumps(row, default=_json_default, ensure_ascii=False))
        return
    if not items:
        typer.echo("the queue is empty")
        return
    typer.echo(
        f"{'id':>5}  {'account':<14}  {'status':<8}  {'when':<16}  {'intent/sentiment':<20}  "
        f"{'flags':<18}  message -> draft"
    )
    for item in items:
        label = f"{item.intent or '?'}/{item.sentiment or '?'}"
        flags = ",".join(item.flags + item.input_flags) or item.verdict
        if item.fallback_used:
            flags = ",".join(filter(None, [flags, "fallback"]))
        typer.echo(
            f"{item.draft_id:>5}  {_short(item.account, 14):<14}  {item.status.value:<8}  "
            f"{_when(item.created_at):<16}  "
            f"{_short(label, 20):<20}  {_short(flags, 18):<18}  "
            f"{_short(item.message_text, 40)} -> {_short(_draft(item), 50)}"
        )


def _draft(item: QueueItem) -> str:
    """A handed-off chat's message has no draft: say what it waits for instead."""
    if not item.draft_text and "handoff" in item.flags:
        return f'(handed off: autoreply queue reply {item.draft_id} "TEXT")'
    return item.draft_text


def print_detail(item: QueueItem, trail: Sequence[AuditEntry]) -> None:
    lines = [
        f"draft #{item.draft_id} ({item.status.value}), account {item.account} "
        f"({item.platform}) chat {item.chat_id}, {_when(item.created_at)}",
        f"from:      {item.user_name or '?'}",
        f"message:   {item.message_text}",
        f"intent:    {item.intent} ({(item.intent_score or 0):.2f})",
        f"sentiment: {item.sentiment} ({(item.sentiment_score or 0):.2f})",
        f"input:     flags {', '.join(item.input_flags) or 'none'}",
        f"draft:     {item.draft_text}",
        f"verdict:   {item.verdict}, toxicity {item.toxicity:.2f}, "
        f"flags {', '.join(item.flags) or 'none'}",
        f"model:     {item.model_version}",
    ]
    if item.fallback_used:
        lines.append(f"fallback:  yes, the model's raw output was {item.raw_text!r}")
    if len(item.candidates) > 1:
        lines += _candidate_table(item.candidates)
    for entry in trail:
        change = f" {entry.before_text!r} -> {entry.after_text!r}" if entry.action == "edit" else ""
        note = f" ({entry.note})" if entry.note else ""
        lines.append(
            f"audit:     {_when(entry.created_at)} {entry.moderator} {entry.action}{change}{note}"
        )
    typer.echo("\n".join(lines))


def _candidate_table(candidates: Sequence[Candidate]) -> list[str]:
    """Best-of-n: every sampled candidate, best first, with its score and its fate."""
    lines = [
        f"candidates: {len(candidates)} sampled, best first",
        f"  {'rank':>4}  {'score':>6}  {'used / dropped':<14}  text",
    ]
    for rank, candidate in enumerate(candidates):
        fate = candidate.dropped.value if candidate.dropped is not None else "used"
        text = candidate.text or f"(empty) raw {candidate.raw!r}"
        lines.append(f"  {rank:>4}  {candidate.score:>6.2f}  {fate:<14}  {_short(text, 70)}")
    return lines


def print_unknown(rows: Sequence[OutboxRow], *, as_json: bool) -> None:
    if as_json:
        for row in rows:
            typer.echo(json.dumps(asdict(row), default=_json_default, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no replies in doubt")
        return
    typer.echo("These replies were being sent when the service stopped; check the chat by hand:")
    for row in rows:
        typer.echo(
            f"outbox #{row.id}  {row.account} ({row.platform}) chat {row.chat_id}  "
            f"draft #{row.draft_id}  "
            f"{_when(row.updated_at)}  {_short(row.text, 60)}"
        )


def after_action(outcome: Outcome) -> None:
    """Report a moderation action and where its reply went."""
    typer.echo(outcome.message)
    if outcome.outbox_id is None:
        return
    if outcome.delivered:
        typer.echo(f"reply stored as sent (outbox #{outcome.outbox_id})")
    else:
        typer.echo(
            f"reply queued for sending (outbox #{outcome.outbox_id}); the running service "
            f"of account {outcome.account!r} sends it within a few seconds"
        )
