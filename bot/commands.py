"""Answers to /commands (platform-neutral): help, ids for set-up, pause and resume.

Commands are never drafted by the model. The caller stores the command message and sends the
answer through the outbox; this module only decides the answer and applies pause / resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.domain import Actor, ChatKind, DecisionAction, Incoming
from bot.errors import PermissionDeniedError
from bot.storage import history

if TYPE_CHECKING:
    from bot.moderation import ModerationService

log = logging.getLogger(__name__)

USER_HELP = (
    "Hi! I answer messages for this account. Write to me here, or mention me in a group. "
    "Replies are drafted by an AI and may be checked by a person before they are sent.\n"
    "/help shows this text, /id shows the ids of this chat and of you."
)
MODERATOR_HELP = (
    "\n\nModerators: /pause and /resume stop and restart auto-replies in this chat; in the "
    "moderators' chat, or with 'all', for the whole account. Draft cards arrive in the "
    "moderators' chat: press Approve, Reject, or Edit and then reply to the card with the new text."
)


@dataclass(frozen=True, slots=True)
class CommandReply:
    text: str | None  # None: say nothing (e.g. another bot's command in a group)
    changed: str | None = None  # what pause / resume changed, for logs and tests


def answer_command(
    session: Session,
    incoming: Incoming,
    stored: history.Stored,
    name: str,
    args: str,
    *,
    actor: Actor,
    in_review_chat: bool,
    moderation: ModerationService,
) -> CommandReply:
    """`actor` is the sender as the moderation service knows them (no accounts: not a
    moderator). Pause and resume go through the service, which checks and audits them."""
    name = name.lower()
    is_moderator = actor.may_act_on(incoming.account)
    if name in ("start", "help"):
        reply = CommandReply(USER_HELP + (MODERATOR_HELP if is_moderator else ""))
    elif name == "id":
        reply = CommandReply(f"Chat id: {incoming.chat_id}\nYour user id: {incoming.user_id}")
    elif name in ("pause", "resume"):
        whole_account = in_review_chat or args.strip().lower() == "all"
        chat_id = None if whole_account else incoming.chat_id
        try:
            outcome = moderation.pause_in(
                session, actor, incoming.account, chat_id, name == "pause"
            )
        except PermissionDeniedError:
            log.warning(
                "refused /%s from user %s in chat %s", name, incoming.user_id, incoming.chat_id
            )
            reply = CommandReply(f"Only moderators can {name} auto-replies.")
        else:
            log.info("%s by %s", outcome.message, actor.display)
            reply = CommandReply(outcome.message, changed=f"{name} {outcome.message}")
    elif incoming.chat_kind is ChatKind.PRIVATE:
        reply = CommandReply(f"I don't know /{name}. Send /help to see what I can do.")
    else:
        reply = CommandReply(None)
    history.mark_handled(session, stored.message_id, DecisionAction.IGNORE, f"command /{name}")
    return reply
