"""Moderators' chat commands of the decision policy: /ban, /unban, /handback (and /handoff).

Platform-neutral like bot/commands.py, which routes these names here. Each goes through the
moderation service in the command's own unit of work, which checks and audits it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.domain import Actor, Incoming
from bot.errors import InputError, InvalidStateError, NotFoundError, PermissionDeniedError

if TYPE_CHECKING:
    from bot.moderation import ModerationService

log = logging.getLogger(__name__)

CHAT_COMMANDS = ("ban", "unban", "handback", "handoff")
USAGE = {
    "ban": "Usage: /ban USER_ID [reason] (the user's numeric id, as /id shows it to them).",
    "unban": "Usage: /unban USER_ID",
    "handback": "Usage: /handback CHAT_ID in the moderators' chat, or /handback in the chat.",
    "handoff": "Usage: /handoff CHAT_ID in the moderators' chat, or /handoff in the chat.",
}
HELP = (
    "\n/ban USER_ID and /unban USER_ID stop and restart answering a user. /handoff and "
    "/handback [CHAT_ID] take a chat from the bot and give it back; a handed-off chat's "
    "messages arrive as cards: reply to a card to answer as the account."
)


def chat_command(
    session: Session,
    incoming: Incoming,
    name: str,
    args: str,
    *,
    actor: Actor,
    in_review_chat: bool,
    moderation: ModerationService,
) -> str:
    """The answer to one of CHAT_COMMANDS. The service refuses (and audits) non-moderators."""
    first, _, rest = args.strip().partition(" ")
    try:
        if name in ("ban", "unban"):
            if not first:
                return USAGE[name]
            outcome = moderation.ban_in(
                session, actor, incoming.account, first, name == "ban", rest.strip() or None
            )
        else:
            chat_id = first or (None if in_review_chat else incoming.chat_id)
            if chat_id is None:
                return USAGE[name]
            if name == "handback":
                outcome = moderation.hand_back_in(session, actor, incoming.account, chat_id)
            else:
                outcome = moderation.hand_off_in(session, actor, incoming.account, chat_id)
    except PermissionDeniedError:
        log.warning("refused /%s from user %s", name, incoming.user_id)
        return f"Only moderators can use /{name}."
    except (InputError, InvalidStateError, NotFoundError) as exc:
        return f"Nothing changed: {exc}."
    log.info("/%s by %s: %s", name, actor.display, outcome.status)
    return outcome.message
