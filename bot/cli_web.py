"""CLI verbs of the web dashboard: `autoreply web`, and `autoreply users add|list|remove|passwd`
for its moderators and operators (registered from bot/cli.py, beside `users ban|unban`).

Passwords come from a hidden prompt (asked twice), from AUTOREPLY_WEB_PASSWORD, or with
`--password-stdin` from the first line of stdin, for scripts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from bot.domain import ActorRole
from bot.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

PASSWORD_ENV = "AUTOREPLY_WEB_PASSWORD"

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help=f"Read the password from stdin's first line (or set {PASSWORD_ENV}).",
    ),
]


def web() -> None:
    """Serve the dashboard alone (default http://127.0.0.1:8080; AUTOREPLY_WEB_HOST/PORT).
    Approved replies go out through a running `autoreply run`."""
    from bot.web.serve import serve_standalone

    serve_standalone()


def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[
        ActorRole,
        typer.Option(
            "--role", help="moderator: the queue of their accounts; operator: everything."
        ),
    ] = ActorRole.MODERATOR,
    accounts: Annotated[
        str | None,
        typer.Option(
            "--accounts", help="Comma-separated account names a moderator works on (default: all)."
        ),
    ] = None,
    telegram_id: Annotated[
        str | None,
        typer.Option(
            "--telegram-id", help="Their own Telegram user id (for one-time login links)."
        ),
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a dashboard user with an argon2-hashed password."""
    from bot.cli import _config
    from bot.storage import web_users
    from bot.web.passwords import hash_password

    name = _check_name(name)
    telegram_id = _check_telegram_id(telegram_id)
    settings, configured = _config()
    scope = _accounts(
        accounts, role, {n for a in configured.all for n in (a.name, a.console().name)}
    )
    password_hash = hash_password(_password(password_stdin))
    with _session(settings.database_url) as s:
        web_users.add(
            s,
            name,
            password_hash,
            role,
            scope,
            platform="telegram" if telegram_id else None,
            platform_user_id=telegram_id,
        )
    where = "every account" if scope is None else ", ".join(sorted(scope))
    typer.echo(f"{role.value} {name!r} added ({where}); log in at the dashboard (`autoreply web`)")


def users_list() -> None:
    """Dashboard users: name, role and the accounts they work on."""
    from bot.cli import _settings
    from bot.storage import web_users

    with _session(_settings().database_url) as s:
        users = web_users.all_users(s)
    if not users:
        typer.echo(
            "no dashboard users yet; add one with `autoreply users add NAME --role operator`"
        )
        return
    for user in users:
        where = "all accounts" if user.accounts is None else ",".join(sorted(user.accounts))
        linked = f"  telegram {user.platform_user_id}" if user.platform_user_id else ""
        typer.echo(f"{user.name:<20} {user.role.value:<10} {where}{linked}")


def users_remove(name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Delete a dashboard user; their open sessions end at their next click."""
    from bot.cli import _settings
    from bot.storage import web_users

    with _session(_settings().database_url) as s:
        web_users.remove(s, name)
    typer.echo(f"dashboard user {name!r} removed")


def users_passwd(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a new password; sessions logged in with the old one end."""
    from bot.cli import _settings
    from bot.storage import web_users
    from bot.web.passwords import hash_password

    password_hash = hash_password(_password(password_stdin))
    with _session(_settings().database_url) as s:
        web_users.set_password(s, name, password_hash)
    typer.echo(f"password of {name!r} changed")


def users_link(
    name: Annotated[str, typer.Argument(help="Login name.")],
    account: Annotated[
        str | None,
        typer.Option("--account", help="Whose bot sends it (default: the default account)."),
    ] = None,
) -> None:
    """Send NAME a one-time login link, in their own private chat with the bot.

    Never to a group. The running service delivers it; it works once, for
    AUTOREPLY_WEB_LINK_MINUTES."""
    from datetime import timedelta

    from bot.cli import _config
    from bot.web.login_links import send_link

    settings, accounts = _config()
    sender = accounts.get(account).name
    base = settings.web_public_url or f"http://{settings.web_host}:{settings.web_port}"
    valid = timedelta(minutes=settings.web_link_minutes)
    with _session(settings.database_url) as s:
        outbox_id = send_link(s, name, sender, base, valid)
    typer.echo(
        f"login link for {name!r} queued to their private chat with {sender!r} (outbox "
        f"#{outbox_id}); the running service sends it; it works once, for "
        f"{settings.web_link_minutes:g} minutes"
    )


@contextmanager
def _session(url: str) -> Iterator[Session]:
    """One unit of work on a database brought to the current schema."""
    from bot.storage import migrate
    from bot.storage.db import Database

    migrate.ensure_schema(url)
    db = Database(url)
    try:
        with db.session() as s:
            yield s
    finally:
        db.dispose()


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise InputError("a user name is 1-64 characters without spaces; pick another")
    return name


def _check_telegram_id(given: str | None) -> str | None:
    """A person's Telegram id is a positive number; login links go to that private chat only
    (a group's id is negative, a channel's starts with -100)."""
    if given is None:
        return None
    value = given.strip()
    if not (value.isascii() and value.isdigit() and int(value) > 0):
        raise InputError(
            f"--telegram-id {given!r} is not a person's Telegram id; use their own numeric user "
            "id (they get it by sending /id to the bot), never a group's negative id"
        )
    return value


def _accounts(given: str | None, role: ActorRole, known: set[str]) -> frozenset[str] | None:
    if given is None:
        return None
    if role is ActorRole.OPERATOR:
        raise InputError("operators act on every account; drop --accounts, or use --role moderator")
    names = frozenset(n.strip() for n in given.split(",") if n.strip())
    if not names:
        raise InputError("--accounts is empty; name at least one account, or leave it out")
    unknown = sorted(names - known)
    if unknown:
        raise InputError(
            f"no configured account named {', '.join(map(repr, unknown))}; see `autoreply "
            "accounts list`"
        )
    return names


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password
