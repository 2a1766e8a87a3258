"""Answers to /commands (platform-neutral): help, ids for set-up, pause and resume, and
moderators' label corrections (/label).

Commands are never drafted by the model. The caller stores the command message and sends the
answer through the outbox; this module only decides the answer and applies pause / resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.commands_chats import CHAT_COMMANDS, chat_command
from bot.commands_chats import HELP as CHAT_HELP
from bot.domain import Actor, ChatKind, DecisionAction, Incoming
from bot.errors import InputError, NotFoundError, PermissionDeniedError, as_sentence
from bot.labels import parse_assignments
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
    "moderators' chat: press Approve, Reject, or Edit and then reply to the card with the new "
    "text. /label ID intent=LABEL sentiment=LABEL corrects what the message of draft ID was "
    "classified as (either label alone works too)."
)
LABEL_USAGE = "Usage: /label ID intent=LABEL sentiment=LABEL (either label alone works too)."


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
        reply = CommandReply(USER_HELP + (MODERATOR_HELP + CHAT_HELP if is_moderator else ""))
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
    elif name == "label":
        reply = _label(session, incoming, args, actor, moderation)
    elif name in CHAT_COMMANDS:
        reply = CommandReply(
            chat_command(
                session,
                incoming,
                name,
                args,
                actor=actor,
                in_review_chat=in_review_chat,
                moderation=moderation,
            )
        )
    elif incoming.chat_kind is ChatKind.PRIVATE:
        reply = CommandReply(f"I don't know /{name}. Send /help to see what I can do.")
    else:
        reply = CommandReply(None)
    history.mark_handled(session, stored.message_id, DecisionAction.IGNORE, f"command /{name}")
    return reply


def _label(
    session: Session, incoming: Incoming, args: str, actor: Actor, moderation: ModerationService
) -> CommandReply:
    """`/label 12 intent=complaint sentiment=negative`, through the moderation service, which
    checks that the sender may act on the draft's account and audits a refusal."""
    moderator = actor.may_act_on(incoming.account)
    draft, _, rest = args.strip().partition(" ")
    try:
        labels = parse_assignments(rest)
        if not draft.lstrip("#").isdigit() or not labels:
            return CommandReply(LABEL_USAGE)
        outcome = moderation.relabel_in(session, actor, int(draft.lstrip("#")), labels)
    except PermissionDeniedError:
        log.warning("refused /label from user %s in chat %s", incoming.user_id, incoming.chat_id)
        if not moderator:
            return CommandReply("Only moderators can correct labels.")
        return CommandReply("Only moderators of that draft's account can correct its labels.")
    except (InputError, NotFoundError) as exc:
        if not moderator:  # says nothing about which drafts exist
            return CommandReply("Only moderators can correct labels.")
        return CommandReply(f"Nothing changed: {exc}.")
    log.info("%s by %s", outcome.message, actor.display)
    return CommandReply(as_sentence(outcome.message) + ".")
