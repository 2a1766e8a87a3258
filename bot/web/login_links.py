"""One-time login links: short-lived, single-use, and sent only in a private chat to the
dashboard user's own platform account, never to a group.

The link goes out through the outbox as a notice of one of the service's accounts (the running
service's channel delivers it), addressed to the private chat whose id is the user's own
platform id. Only the token's SHA-256 is stored in web_login_links; the outbox row (and the
sent message) holds the link itself, which is useless once used or expired.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy.orm import Session

from bot.domain import OutgoingKind, utcnow
from bot.errors import InputError, InvalidStateError, NotFoundError
from bot.storage import accounts as account_store
from bot.storage import outbox_store, web_users

LINK_PATH = "/login/link/"


def send_link(
    session: Session, user_name: str, account: str, base_url: str, valid_for: timedelta
) -> int:
    """Store a new link for `user_name` and queue it to their private chat with `account`'s
    bot. Returns the outbox row's id."""
    user = web_users.by_name(session, user_name)
    if user is None:
        raise NotFoundError(f"there is no dashboard user {user_name!r}; see `autoreply users list`")
    if not user.platform_user_id:
        raise InputError(
            f"{user_name!r} has no platform account to send a link to; add the user again with "
            "`--telegram-id ID` (their own Telegram user id, from /id), or log in with a password"
        )
    state = account_store.by_name(session, account)
    if state is None:
        raise NotFoundError(
            f"there is no account {account!r} in the database yet; see `autoreply accounts list`"
        )
    if state.platform != user.platform:
        raise InputError(
            f"account {account!r} is on {state.platform}, but {user_name!r} is a {user.platform} "
            "user; pick an account of that platform with --account"
        )
    chat_id = user.platform_user_id
    # A Telegram private chat's id is the user's own (positive) id; groups' are negative.
    # isascii: str.isdigit also accepts other scripts' digits ("١٢٣"), which no id has.
    if not (chat_id.isascii() and chat_id.isdigit()):
        raise InputError(
            f"{chat_id!r} is not a person's Telegram id (groups have negative ids); links go "
            "only to a private chat"
        )
    conversation_id = web_users.private_chat(session, state.id, chat_id)
    if conversation_id is None:
        raise InvalidStateError(
            f"chat {chat_id} of {account!r} is a group, not a private chat; a login link is "
            "never sent to a group"
        )
    token = secrets.token_urlsafe(32)
    web_users.add_link(session, user.id, token, utcnow() + valid_for)
    minutes = round(valid_for.total_seconds() / 60)
    text = (
        f"Your one-time login link for the autoreply dashboard (valid for {minutes} minutes, "
        f"once): {base_url.rstrip('/')}{LINK_PATH}{token}\n"
        "If you did not ask for it, ignore this message."
    )
    return outbox_store.enqueue(
        session,
        account_id=state.id,
        conversation_id=conversation_id,
        text=text,
        draft_id=None,
        reply_to_id=None,
        kind=OutgoingKind.NOTICE,
    )
