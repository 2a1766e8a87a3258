"""The moderation service's actions on people and chats rather than on drafts: a moderator's
own reply in a handed-off chat, handing a chat to people and back, bans, cancelling a delayed
send, and expiring stale drafts.

`ChatActions` is a part of `ModerationService` (bot/moderation.py), kept in its own module so
neither grows past a readable size; there is still one service object. Like every action of
the service, each call checks the actor's accounts, audits what it did (and any refusal), and
is one unit of work.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

from sqlalchemy.orm import Session

from bot.domain import Actor, ModerationKind, OutboxRow, Outcome
from bot.errors import (
    AutoreplyError,
    InputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
)
from bot.storage import accounts as account_store
from bot.storage import chat_controls
from bot.storage import drafts as draft_store

if TYPE_CHECKING:
    from bot.domain import AccountState

T = TypeVar("T")


class Refused(Exception):
    """Raised inside a unit of work after the refusal was audited in it: the unit commits
    (keeping the audit row), then `error` is raised to the caller."""

    def __init__(self, error: AutoreplyError) -> None:
        super().__init__(str(error))
        self.error = error


class _Service(Protocol):
    """What these actions use of the service they are part of."""

    def _run(self, work: Callable[[Session], T]) -> T: ...

    def _refuse(
        self,
        s: Session,
        account_id: int,
        actor: Actor,
        note: str,
        *,
        draft_id: int | None = None,
        target_kind: str = "draft",
        target: str | None = None,
    ) -> None: ...

    def _write(
        self, actor: Actor, draft_id: int, new_text: str, kind: ModerationKind
    ) -> Outcome: ...


class ChatActions:
    # --- handed-off chats -----------------------------------------------------------------

    def reply(self: _Service, actor: Actor, draft_id: int, text: str) -> Outcome:
        """Send a moderator's own message, as the account, in answer to a queued message (a
        handed-off chat's, or any queued draft's instead of the model's text). The text goes
        through the safety gate like an edit: a blocked text is refused."""
        return self._write(actor, draft_id, text, ModerationKind.REPLY)

    def hand_off(self: _Service, actor: Actor, account: str, chat_id: str) -> Outcome:
        """Take a chat from the bot: no more drafts there, each message waits for a person."""
        return self._run(lambda s: _handoff(self, s, actor, account, chat_id, True))

    def hand_back(self: _Service, actor: Actor, account: str, chat_id: str) -> Outcome:
        """Give a handed-off chat back to the bot."""
        return self._run(lambda s: _handoff(self, s, actor, account, chat_id, False))

    def hand_off_in(
        self: _Service, session: Session, actor: Actor, account: str, chat_id: str
    ) -> Outcome:
        """`hand_off` inside the caller's unit of work (a /handoff command)."""
        try:
            return _handoff(self, session, actor, account, chat_id, True)
        except Refused as refused:
            raise refused.error from None

    def hand_back_in(
        self: _Service, session: Session, actor: Actor, account: str, chat_id: str
    ) -> Outcome:
        """`hand_back` inside the caller's unit of work (a /handback command)."""
        try:
            return _handoff(self, session, actor, account, chat_id, False)
        except Refused as refused:
            raise refused.error from None

    # --- bans -----------------------------------------------------------------------------

    def ban(
        self: _Service, actor: Actor, account: str, user_id: str, *, reason: str | None = None
    ) -> Outcome:
        """Ban a user of an account: their messages are stored without text, never drafted
        for and never exported for training."""
        return self._run(lambda s: _ban(self, s, actor, account, user_id, True, reason))

    def unban(self: _Service, actor: Actor, account: str, user_id: str) -> Outcome:
        return self._run(lambda s: _ban(self, s, actor, account, user_id, False, None))

    def ban_in(
        self: _Service,
        session: Session,
        actor: Actor,
        account: str,
        user_id: str,
        ban: bool,
        reason: str | None = None,
    ) -> Outcome:
        """`ban` / `unban` inside the caller's unit of work (a /ban command)."""
        try:
            return _ban(self, session, actor, account, user_id, ban, reason)
        except Refused as refused:
            raise refused.error from None

    # --- delayed sends --------------------------------------------------------------------

    def pending_sends(
        self: _Service, actor: Actor, *, account: str | None = None, limit: int = 50
    ) -> list[OutboxRow]:
        """Replies not sent yet (waiting out the send delay, or a retry): what can be
        cancelled. `updated_at` is when each is due."""

        def work(s: Session) -> list[OutboxRow]:
            if account is not None:
                _account(self, s, actor, account, "list pending sends", "account", account)
                return chat_controls.pending_replies(s, (account,), limit)
            scope = None if actor.accounts is None else tuple(sorted(actor.accounts))
            return chat_controls.pending_replies(s, scope, limit)

        return self._run(work)

    def cancel_send(
        self: _Service, actor: Actor, outbox_id: int, *, reason: str | None = None
    ) -> Outcome:
        """Stop a reply that has not gone out yet; its draft becomes rejected."""

        def work(s: Session) -> Outcome:
            owner = chat_controls.outbox_account(s, outbox_id)
            if owner is None:
                raise NotFoundError(
                    f"there is no outgoing reply #{outbox_id}; see `autoreply queue pending`"
                )
            account_id, name = owner
            target = str(outbox_id)
            _account(self, s, actor, name, "cancel a send", "outbox", target)
            if not chat_controls.cancel_send(s, outbox_id):
                raise InvalidStateError(
                    f"#{outbox_id} is not a reply waiting to be sent (already sent, failed or "
                    "cancelled, or a moderators' card); see `autoreply queue pending`"
                )
            draft_store.audit(
                s,
                account_id=account_id,
                actor=actor,
                action=ModerationKind.CANCEL,
                target_kind="outbox",
                target=target,
                note=reason,
            )
            return Outcome(name, "cancelled", f"reply #{outbox_id} cancelled; nothing was sent")

        return self._run(work)

    # --- the queue ------------------------------------------------------------------------

    def expire_stale(self: _Service, actor: Actor, older_than: timedelta) -> int:
        """Expire queued drafts older than `older_than` (nothing is sent), each one audited.
        For the scheduled job; `actor` is the policy."""

        def work(s: Session) -> int:
            expired = chat_controls.expire_queued(s, older_than)
            hours = older_than.total_seconds() / 3600
            for draft_id, account_id in expired:
                draft_store.audit(
                    s,
                    account_id=account_id,
                    actor=actor,
                    action=ModerationKind.EXPIRE,
                    draft_id=draft_id,
                    note=f"queued for more than {hours:g} h",
                )
            return len(expired)

        return self._run(work)


def _account(
    service: _Service,
    s: Session,
    actor: Actor,
    account: str,
    verb: str,
    target_kind: str,
    target: str,
) -> AccountState:
    """The account, after checking that `actor` moderates it (a refusal is audited)."""
    state = account_store.by_name(s, account)
    if state is None:
        raise NotFoundError(
            f"there is no account {account!r} in the database yet; see `autoreply accounts list`"
        )
    if not actor.may_act_on(account):
        service._refuse(
            s,
            state.id,
            actor,
            f"{verb}: not a moderator of this account",
            target_kind=target_kind,
            target=target,
        )
        raise Refused(
            PermissionDeniedError(
                f"{actor.display} may not {verb} for account {account!r}; only its moderators can"
            )
        )
    return state


def _handoff(
    service: _Service, s: Session, actor: Actor, account: str, chat_id: str, to_people: bool
) -> Outcome:
    verb = "hand off a chat" if to_people else "hand back a chat"
    state = _account(service, s, actor, account, verb, "chat", chat_id)
    conversation_id = account_store.conversation_id(s, state.id, chat_id)
    if conversation_id is None:
        raise NotFoundError(f"account {account!r} has no chat {chat_id!r}; check the chat id")
    if not chat_controls.set_handed_off(s, conversation_id, to_people, by=actor):
        already = "already handed to people" if to_people else "not handed off"
        raise InvalidStateError(f"chat {chat_id} of {account!r} is {already}; nothing changed")
    draft_store.audit(
        s,
        account_id=state.id,
        actor=actor,
        action=ModerationKind.HANDOFF if to_people else ModerationKind.HANDBACK,
        target_kind="chat",
        target=chat_id,
    )
    if to_people:
        message = f"Chat {chat_id} is handed to people: the bot drafts nothing there now."
    else:
        message = f"Chat {chat_id} is handed back to the bot."
    return Outcome(account, "handed_off" if to_people else "handed_back", message)


def _ban(
    service: _Service,
    s: Session,
    actor: Actor,
    account: str,
    user_id: str,
    ban: bool,
    reason: str | None,
) -> Outcome:
    user_id = user_id.strip()
    if not user_id:
        raise InputError("give the platform user id to ban (Telegram: the number /id shows)")
    verb = "ban users" if ban else "unban users"
    state = _account(service, s, actor, account, verb, "user", user_id)
    if not chat_controls.set_banned(s, state.id, user_id, ban, by=actor):
        already = "already banned" if ban else "not banned"
        raise InvalidStateError(f"user {user_id} of {account!r} is {already}; nothing changed")
    draft_store.audit(
        s,
        account_id=state.id,
        actor=actor,
        action=ModerationKind.BAN if ban else ModerationKind.UNBAN,
        target_kind="user",
        target=user_id,
        note=reason,
    )
    if ban:
        message = (
            f"User {user_id} is banned from {account!r}: their messages are kept as metadata "
            "only and never answered."
        )
    else:
        message = f"User {user_id} is no longer banned from {account!r}."
    return Outcome(account, "banned" if ban else "unbanned", message)
