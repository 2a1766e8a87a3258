"""CLI verbs of the decision policy: a moderator's own reply, delayed sends, bans, handoffs.

`autoreply queue reply|pending|cancel`, `autoreply users ban|unban`, `autoreply chats
handoff|handback`; registered from bot/cli.py. Each is a thin call into the moderation
service, which checks, audits and sends.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

users_app = typer.Typer(
    help="Dashboard users (add, list, remove, passwd), and bans of an account's users.",
    no_args_is_help=True,
)
chats_app = typer.Typer(
    help="Hand chats to people (no bot drafts there) and back to the bot.", no_args_is_help=True
)

ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Moderator name for the audit trail (default: cli:$USER)."),
]


def queue_reply(
    draft_id: int,
    text: Annotated[str, typer.Argument(help="Your reply, sent as the account; '-' reads stdin.")],
    by: ByOption = None,
) -> None:
    """Answer a queued message with your own text (a handed-off chat's messages wait for this).
    The text is checked by the safety gate; a blocked one is refused."""
    from bot.cli import _actor, _moderation
    from bot.queue_view import after_action

    if text == "-":
        text = sys.stdin.read()
    service, _, _ = _moderation()
    after_action(service.reply(_actor(by), draft_id, text))


def queue_pending(
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account (default: all).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Replies not sent yet (waiting out the account's send delay): cancel one with
    `autoreply queue cancel ID`."""
    from bot.cli import _actor, _moderation

    service, _, _ = _moderation()
    rows = service.pending_sends(_actor(None), account=account, limit=limit)
    if not rows:
        typer.echo("No replies are waiting to be sent.")
        return
    for row in rows:
        due = row.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        text = " ".join(row.text.split())
        typer.echo(f"#{row.id}  {row.account}  chat {row.chat_id}  due {due}  {text[:80]}")


def queue_cancel(
    outbox_id: Annotated[int, typer.Argument(help="The reply's id, from `queue pending`.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    by: ByOption = None,
) -> None:
    """Stop a reply that is still waiting to be sent (nothing goes out)."""
    from bot.cli import _actor, _moderation

    service, _, _ = _moderation()
    typer.echo(service.cancel_send(_actor(by), outbox_id, reason=reason).message)


@users_app.command("ban")
def users_ban(
    account: Annotated[str, typer.Argument(help="Account name.")],
    user_id: Annotated[str, typer.Argument(help="The platform's user id (Telegram: /id).")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    by: ByOption = None,
) -> None:
    """Ban a user: their messages are stored without text, never answered or exported."""
    from bot.cli import _actor, _moderation

    service, _, _ = _moderation()
    typer.echo(service.ban(_actor(by), account, user_id, reason=reason).message)


@users_app.command("unban")
def users_unban(
    account: Annotated[str, typer.Argument(help="Account name.")],
    user_id: Annotated[str, typer.Argument(help="The platform's user id.")],
    by: ByOption = None,
) -> None:
    """Lift a ban; later messages are handled as usual."""
    from bot.cli import _actor, _moderation

    service, _, _ = _moderation()
    typer.echo(service.unban(_actor(by), account, user_id).message)


@chats_app.command("handoff")
def chats_handoff(
    account: Annotated[str, typer.Argument(help="Account name.")],
    chat_id: Annotated[str, typer.Argument(help="The chat's id.")],
    by: ByOption = None,
) -> None:
    """Take a chat from the bot: each new message waits for a moderator's own reply."""
    from bot.cli import _actor, _moderation

    service, _, _ = _moderation()
    typer.echo(service.hand_off(_actor(by), account, chat_id).message)


@chats_app.command("handback")
def chats_handback(
    account: Annotated[str, typer.Argument(help="Account name.")],
    chat_id: Annotated[str, typer.Argument(help="The chat's id.")],
    by: ByOption = None,
) -> None:
    """Give a handed-off chat back to the bot."""
    from bot.cli import _actor, _moderation

    service, _, _ = _moderation()
    typer.echo(service.hand_back(_actor(by), account, chat_id).message)
