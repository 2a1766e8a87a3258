"""`autoreply accounts list`: the configured accounts beside their state in the database."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta

import typer

from bot.accounts import Accounts
from bot.domain import AccountState, utcnow

STALE_AFTER = timedelta(minutes=3)  # three missed heartbeats (bot/jobs.py beats every minute)


@dataclass(frozen=True, slots=True)
class AccountRow:
    name: str
    platform: str
    mode: str
    paused: bool
    adapter: str
    health: str
    queued: int
    in_doubt: int
    default: bool


def health_text(state: AccountState | None) -> str:
    """ok / down: why / stopped / stale: a process that stopped beating without saying so."""
    if state is None or state.health is None:
        return "never started"
    if state.health == "ok" and state.health_at and utcnow() - state.health_at > STALE_AFTER:
        return f"stale (no heartbeat since {state.health_at:%Y-%m-%d %H:%M} UTC)"
    return f"{state.health}: {state.health_note}" if state.health_note else state.health


def rows(accounts: Accounts, states: Sequence[AccountState]) -> list[AccountRow]:
    by_name = {state.name: state for state in states}
    out = []
    for account in accounts:
        state = by_name.pop(account.name, None)
        out.append(
            AccountRow(
                account.name,
                account.platform,
                account.mode.value,
                bool(state and state.paused),
                account.adapter or "-",
                health_text(state),
                state.queued if state else 0,
                state.in_doubt if state else 0,
                account.is_default,
            )
        )
    for state in by_name.values():  # history of accounts no longer configured, or consoles
        out.append(
            AccountRow(
                state.name,
                state.platform,
                "not configured",
                state.paused,
                "-",
                health_text(state),
                state.queued,
                state.in_doubt,
                False,
            )
        )
    return out


def print_accounts(accounts: Accounts, states: Sequence[AccountState], *, as_json: bool) -> None:
    table = rows(accounts, states)
    if as_json:
        for row in table:
            typer.echo(json.dumps(asdict(row)))
        return
    typer.echo(
        f"{'name':<20}  {'platform':<9}  {'mode':<14}  {'paused':<6}  {'adapter':<16}  "
        f"{'queued':>6}  {'doubt':>5}  health"
    )
    for row in table:
        name = f"{row.name}*" if row.default else row.name
        typer.echo(
            f"{name:<20}  {row.platform:<9}  {row.mode:<14}  {'yes' if row.paused else 'no':<6}  "
            f"{row.adapter[-16:]:<16}  {row.queued:>6}  {row.in_doubt:>5}  {row.health}"
        )
    typer.echo("* the default account (used by chat, classify and queue without --account)")
