"""Answers to /commands (platform-neutral): help, ids for set-up, pause and resume.

Commands are never drafted by the model. The caller stores the command message and sends the
answer through the outbox; this module only decides the answer and applies pause / resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.domain import ChatKind, DecisionAction, Incoming
from bot.storage import history
from bot.storage import models as m

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
    is_moderator: bool,
    in_review_chat: bool,
) -> CommandReply:
    name = name.lower()
    if name in ("start", "help"):
        reply = CommandReply(USER_HELP + (MODERATOR_HELP if is_moderator else ""))
    elif name == "id":
        reply = CommandReply(f"Chat id: {incoming.chat_id}\nYour user id: {incoming.user_id}")
    elif name in ("pause", "resume"):
        reply = _pause(
            session, incoming, stored, name == "pause", args, is_moderator, in_review_chat
        )
    elif incoming.chat_kind is ChatKind.PRIVATE:
        reply = CommandReply(f"I don't know /{name}. Send /help to see what I can do.")
    else:
        reply = CommandReply(None)
    history.mark_handled(session, stored.message_id, DecisionAction.IGNORE, f"command /{name}")
    return reply


def _pause(
    session: Session,
    incoming: Incoming,
    stored: history.Stored,
    pause: bool,
    args: str,
    is_moderator: bool,
    in_review_chat: bool,
) -> CommandReply:
    verb = "pause" if pause else "resume"
    if not is_moderator:
        log.warning("refused /%s from user %s in chat %s", verb, incoming.user_id, incoming.chat_id)
        return CommandReply(f"Only moderators can {verb} auto-replies.")
    whole_account = in_review_chat or args.strip().lower() == "all"
    if whole_account:
        session.execute(
            update(m.Account).where(m.Account.id == stored.account_id).values(paused=pause)
        )
        scope = "for the whole account"
    else:
        session.execute(
            update(m.Conversation)
            .where(m.Conversation.id == stored.conversation_id)
            .values(paused=pause)
        )
        scope = "in this chat"
    log.info("auto-replies %sd %s by %s", verb, scope, incoming.user_id)
    state = "paused" if pause else "resumed"
    return CommandReply(f"Auto-replies {state} {scope}.", changed=f"{verb} {scope}")
