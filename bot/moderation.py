"""The moderation service: the one way to list, show, approve, edit, reject, relabel, pause and
resume.

The CLI, the Telegram moderators' chat and (later) the web page are thin callers. Every call
names an `Actor`; the service checks that the actor may act on the account concerned, and
writes every action and every refusal to the audit trail, here and nowhere else. Approved
replies go to the outbox from here too, and the `wake` hook tells the sender (the running
service's outbox, or the CLI's local delivery for console accounts).

Each call is one unit of work. State changes are conditional UPDATEs, so a second press or a
second moderator changes nothing and gets an InvalidStateError that says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from bot import labels as label_rules
from bot.config import DEFAULT_INTENTS
from bot.domain import (
    HANDOFF_FLAG,
    Actor,
    AuditEntry,
    DraftStatus,
    ModerationKind,
    OutboxRow,
    OutboxStatus,
    Outcome,
    QueueItem,
    Verdict,
    VerdictAction,
)
from bot.errors import (
    InputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
)
from bot.moderation_chats import ChatActions
from bot.moderation_chats import Refused as _Refused
from bot.safety.context import NO_CONTEXT, CheckContext
from bot.storage import accounts as account_store
from bot.storage import drafts as draft_store
from bot.storage import labels as label_store
from bot.storage import outbox_store
from bot.storage.db import Database

MAX_REPLY_CHARS = 4096 * 4  # channels split long replies; beyond this an edit is surely a mistake
T = TypeVar("T")


class DraftChecker(Protocol):
    """The safety gate's check of a draft (an edited text goes through it again)."""

    def check_draft(self, text: str, context: CheckContext = ...) -> Verdict: ...


Scope = str | Sequence[str] | None  # one account, several, or all the actor may see
Wake = Callable[[int], bool]  # conversation id -> True when the reply was delivered at once


class ModerationService(ChatActions):
    def __init__(
        self,
        db: Database,
        *,
        gate: Callable[[], DraftChecker],
        wake: Wake | None = None,
        intent_labels: Mapping[str, Sequence[str]] | None = None,
        contexts: Mapping[str, CheckContext] | None = None,
    ) -> None:
        """`gate` builds (or returns) the safety gate on first use: listing the queue from the
        CLI should not pay for loading the toxicity model. `intent_labels` maps account names
        to their classifier's labels, which a label correction must use (an account not in it
        has the default labels). `contexts` maps account names to their safety context
        (`Account.check_context()`): an edit is judged by its account's rules and persona and
        against the message it answers (an account not in it gets the gate's defaults)."""
        self._db = db
        self._gate_factory = gate
        self._gate: DraftChecker | None = None
        self._wake = wake
        self._intent_labels = dict(intent_labels or {})
        self._contexts = dict(contexts or {})

    # --- reading --------------------------------------------------------------------------

    def list_queue(
        self,
        actor: Actor,
        *,
        account: Scope = None,
        include_all: bool = False,
        limit: int = 50,
    ) -> list[QueueItem]:
        """Queued drafts (all drafts with `include_all`) of the accounts the actor may see."""
        statuses = tuple(DraftStatus) if include_all else (DraftStatus.QUEUED,)
        return self._run(
            lambda s: draft_store.list_drafts(
                s, statuses, limit, self._scope(s, actor, account, "list the queue")
            )
        )

    def show(self, actor: Actor, draft_id: int) -> tuple[QueueItem, list[AuditEntry]]:
        def work(s: Session) -> tuple[QueueItem, list[AuditEntry]]:
            item = self._item(s, draft_id)
            if not actor.may_act_on(item.account):
                self._refuse(
                    s,
                    item.account_id,
                    actor,
                    "show: not a moderator of this account",
                    draft_id=draft_id,
                )
                # Another account's draft is not even confirmed to exist.
                raise _Refused(NotFoundError(_no_draft(draft_id)))
            return item, draft_store.audit_trail(s, draft_id=draft_id)

        return self._run(work)

    def draft_status(self, draft_id: int) -> str | None:
        """A draft's state alone (None: no such draft), for a front end to show after an action
        failed, e.g. to take the buttons off a card that was already handled. No content, so
        no actor check and nothing to audit."""
        with self._db.session() as s:
            item = draft_store.get_item(s, draft_id)
            return item.status.value if item else None

    def in_doubt(self, actor: Actor, *, account: Scope = None, limit: int = 50) -> list[OutboxRow]:
        """Replies whose delivery is unknown (the process died mid-send): a person must check."""
        return self._run(
            lambda s: outbox_store.list_rows(
                s, (OutboxStatus.UNKNOWN,), limit, self._scope(s, actor, account, "list in doubt")
            )
        )

    def audit_log(
        self, actor: Actor, *, account: Scope = None, limit: int = 50
    ) -> list[AuditEntry]:
        return self._run(
            lambda s: draft_store.audit_trail(
                s, accounts=self._scope(s, actor, account, "read the audit"), limit=limit
            )
        )

    # --- drafts ---------------------------------------------------------------------------

    def approve(self, actor: Actor, draft_id: int, *, override: str | None = None) -> Outcome:
        """Send the draft as it stands. A draft the safety gate blocked needs `override`: the
        moderator's reason, audited with the approval."""
        reason = (override or "").strip()
        if override is not None and not reason:
            raise InputError("an override needs a reason; say why this blocked draft may go out")

        def work(s: Session) -> Outcome:
            item = self._queued(s, actor, draft_id, "approve")
            if HANDOFF_FLAG in item.flags:
                raise InvalidStateError(
                    f"message #{draft_id} has no draft: it waits for a person's own reply (a "
                    "handed-off chat, or a message the gate flagged); write it: "
                    f'`autoreply queue reply {draft_id} "TEXT"`, or reject it'
                )
            if item.blocked and not reason:
                self._refuse(
                    s,
                    item.account_id,
                    actor,
                    "approve: blocked draft, no override",
                    draft_id=draft_id,
                )
                raise _Refused(
                    InvalidStateError(
                        f"draft #{draft_id} was blocked by the safety gate ({_why(item)}); edit "
                        "it (the new text is checked again), reject it, or approve it with an "
                        "override "
                        f"and a reason: `autoreply queue approve {draft_id} --override REASON`"
                    )
                )
            self._move(s, item, DraftStatus.APPROVED)
            kind = ModerationKind.OVERRIDE if item.blocked else ModerationKind.APPROVE
            # A reason given for a draft that needed none is kept all the same.
            self._audit(s, item, actor, kind, item.draft_text, item.draft_text, reason or None)
            return self._send(s, item, item.draft_text, DraftStatus.APPROVED)

        return self._run(work)

    def edit(self, actor: Actor, draft_id: int, new_text: str) -> Outcome:
        """Replace the draft's text and send it. The new text goes through the safety gate: a
        blocked text is refused and nothing changes; a flagged one is sent, since a moderator
        wrote it, and its flags are recorded. On a message of a handed-off chat (no draft)
        this is the moderator's own reply, audited as one."""
        return self._write(actor, draft_id, new_text, ModerationKind.EDIT)

    def _write(self, actor: Actor, draft_id: int, new_text: str, kind: ModerationKind) -> Outcome:
        text = new_text.strip()
        if not text:
            raise InputError(
                "the edited reply is empty; give the text to send, or reject the draft"
            )
        if len(text) > MAX_REPLY_CHARS:
            raise InputError(
                f"the edited reply has {len(text)} characters; keep it under {MAX_REPLY_CHARS}"
            )

        def work(s: Session) -> Outcome:
            item = self._queued(s, actor, draft_id, "edit")
            verdict = self._check(text, item)
            if verdict.action is VerdictAction.BLOCK:
                why = ", ".join(verdict.flags) or f"toxicity {verdict.toxicity:.2f}"
                self._refuse(
                    s, item.account_id, actor, f"edit: new text blocked ({why})", draft_id=draft_id
                )
                raise _Refused(
                    InvalidStateError(
                        f"the edited text for draft #{draft_id} is blocked by the safety gate "
                        f"({why}); write it differently, or reject the draft"
                    )
                )
            self._move(s, item, DraftStatus.EDITED, text)
            draft_store.set_verdict(s, draft_id, verdict)
            own = ModerationKind.REPLY if HANDOFF_FLAG in item.flags else kind
            self._audit(s, item, actor, own, item.draft_text or None, text)
            return self._send(s, item, text, DraftStatus.EDITED)

        return self._run(work)

    def reject(self, actor: Actor, draft_id: int, *, reason: str | None = None) -> Outcome:
        """Drop the draft; nothing is sent."""

        def work(s: Session) -> Outcome:
            item = self._queued(s, actor, draft_id, "reject")
            self._move(s, item, DraftStatus.REJECTED)
            self._audit(s, item, actor, ModerationKind.REJECT, item.draft_text, None, reason)
            return Outcome(
                item.account,
                DraftStatus.REJECTED.value,
                f"draft #{draft_id} rejected",
                draft_id=draft_id,
                conversation_id=item.conversation_id,
            )

        return self._run(work)

    def check(self, actor: Actor, draft_id: int, verb: str) -> Outcome:
        """May `actor` act on this queued draft? Changes nothing; a refusal is audited."""

        def work(s: Session) -> Outcome:
            item = self._queued(s, actor, draft_id, verb)
            own = HANDOFF_FLAG in item.flags  # nothing drafted: the moderator writes it all
            return Outcome(
                item.account,
                item.status.value,
                "Reply to this card with your answer to send it."
                if own
                else "Reply to this card with the new text to send it.",
                draft_id=draft_id,
            )

        return self._run(work)

    # --- labels ---------------------------------------------------------------------------

    def relabel(
        self,
        actor: Actor,
        draft_id: int,
        *,
        intent: str | None = None,
        sentiment: str | None = None,
    ) -> Outcome:
        """Record the true intent and/or sentiment of the message a draft answers, as
        training data for the classifiers. Works on a draft in any state: a label is about
        the message, not the reply. A later correction replaces an earlier one."""
        wanted = label_rules.corrections(intent, sentiment)
        return self._run(lambda s: self._relabel(s, actor, draft_id, wanted))

    def relabel_in(
        self, session: Session, actor: Actor, draft_id: int, labels: Mapping[str, str]
    ) -> Outcome:
        """`relabel` inside the caller's unit of work (a /label command is stored and applied
        in one transaction). Raises PermissionDeniedError after auditing a refusal."""
        try:
            return self._relabel(session, actor, draft_id, dict(labels))
        except _Refused as refused:
            raise refused.error from None

    def _relabel(self, s: Session, actor: Actor, draft_id: int, wanted: dict[str, str]) -> Outcome:
        item = self._item(s, draft_id)
        if not actor.may_act_on(item.account):
            self._refuse(
                s,
                item.account_id,
                actor,
                "relabel: not a moderator of this account",
                draft_id=draft_id,
            )
            raise _Refused(
                PermissionDeniedError(
                    f"{actor.display} may not relabel messages of account {item.account!r}; "
                    "only its moderators can"
                )
            )
        intents = self._intent_labels.get(item.account, DEFAULT_INTENTS)
        checked = {
            task: label_rules.check_label(
                task, label, intent_labels=intents, where=f"account {item.account!r}"
            )
            for task, label in wanted.items()
        }
        for task, label in checked.items():
            label_store.set_for_message(
                s,
                account_id=item.account_id,
                message_id=item.message_id,
                task=task,
                text=item.message_text,
                label=label,
                source=f"moderator:{actor.display}",
            )
        note = label_rules.note(checked)
        self._audit(s, item, actor, ModerationKind.RELABEL, None, None, note)
        return Outcome(
            item.account, "relabelled", f"draft #{draft_id}: labels set ({note})", draft_id
        )

    # --- accounts and chats ---------------------------------------------------------------

    def pause(self, actor: Actor, account: str, *, chat_id: str | None = None) -> Outcome:
        """Stop auto-replies for a whole account, or in one of its chats."""
        return self._run(lambda s: self._set_paused(s, actor, account, chat_id, True))

    def resume(self, actor: Actor, account: str, *, chat_id: str | None = None) -> Outcome:
        return self._run(lambda s: self._set_paused(s, actor, account, chat_id, False))

    def pause_in(
        self, session: Session, actor: Actor, account: str, chat_id: str | None, pause: bool
    ) -> Outcome:
        """`pause` / `resume` inside the caller's unit of work (a /pause command is stored and
        applied in one transaction). Raises PermissionDeniedError after auditing a refusal."""
        try:
            return self._set_paused(session, actor, account, chat_id, pause)
        except _Refused as refused:
            raise refused.error from None

    # --- internals ------------------------------------------------------------------------

    def _run(self, work: Callable[[Session], T]) -> T:
        """One unit of work. A refusal is committed (audited) before it is raised; a queued
        reply wakes the sender once committed."""
        refused: _Refused | None = None
        with self._db.session() as s:
            try:
                result = work(s)
            except _Refused as exc:
                refused = exc
        if refused is not None:
            raise refused.error
        wake = self._wake
        if isinstance(result, Outcome) and wake and result.outbox_id is not None:
            assert result.conversation_id is not None
            result = replace(result, delivered=wake(result.conversation_id))
        return result

    def _scope(
        self, s: Session, actor: Actor, accounts: Scope, verb: str
    ) -> tuple[str, ...] | None:
        """The account names a listing covers: those asked for (each one checked, a refusal
        audited), or every account the actor may see."""
        if accounts is None:
            return None if actor.accounts is None else tuple(sorted(actor.accounts))
        names = (accounts,) if isinstance(accounts, str) else tuple(accounts)
        for name in names:
            if not actor.may_act_on(name):
                state = account_store.by_name(s, name)
                if state is not None:
                    self._refuse(
                        s,
                        state.id,
                        actor,
                        f"{verb}: not a moderator of this account",
                        target_kind="account",
                        target=name,
                    )
                raise _Refused(
                    PermissionDeniedError(
                        f"{actor.display} may not see account {name!r}; ask an operator to "
                        "assign it"
                    )
                )
        return names

    def _item(self, s: Session, draft_id: int) -> QueueItem:
        item = draft_store.get_item(s, draft_id)
        if item is None:
            raise NotFoundError(_no_draft(draft_id))
        return item

    def _queued(self, s: Session, actor: Actor, draft_id: int, verb: str) -> QueueItem:
        item = self._item(s, draft_id)
        if not actor.may_act_on(item.account):
            self._refuse(
                s,
                item.account_id,
                actor,
                f"{verb}: not a moderator of this account",
                draft_id=draft_id,
            )
            raise _Refused(
                PermissionDeniedError(
                    f"{actor.display} may not {verb} drafts of account {item.account!r}; only its "
                    "moderators can"
                )
            )
        if item.status is not DraftStatus.QUEUED:
            raise InvalidStateError(
                f"draft #{draft_id} is already {item.status.value}; only queued drafts can be "
                "approved, edited or rejected"
            )
        return item

    def _move(self, s: Session, item: QueueItem, to: DraftStatus, text: str | None = None) -> None:
        if not draft_store.transition(
            s, item.draft_id, expected=(DraftStatus.QUEUED,), to=to, text=text
        ):
            raise InvalidStateError(
                f"draft #{item.draft_id} was just handled by someone else; see `autoreply queue "
                f"show {item.draft_id}`"
            )

    def _send(self, s: Session, item: QueueItem, text: str, status: DraftStatus) -> Outcome:
        outbox_id = draft_store.enqueue_reply(s, item, text)
        return Outcome(
            item.account,
            status.value,
            f"draft #{item.draft_id} {status.value}",
            draft_id=item.draft_id,
            conversation_id=item.conversation_id,
            outbox_id=outbox_id,
        )

    def _check(self, text: str, item: QueueItem) -> Verdict:
        if self._gate is None:
            self._gate = self._gate_factory()
        context = self._contexts.get(item.account, NO_CONTEXT)
        return self._gate.check_draft(text, context.replying_to(item.message_text))

    def _audit(
        self,
        s: Session,
        item: QueueItem,
        actor: Actor,
        kind: ModerationKind,
        before: str | None,
        after: str | None,
        note: str | None = None,
    ) -> None:
        draft_store.audit(
            s,
            account_id=item.account_id,
            actor=actor,
            action=kind,
            draft_id=item.draft_id,
            before_text=before,
            after_text=after,
            note=note,
        )

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
    ) -> None:
        draft_store.audit(
            s,
            account_id=account_id,
            actor=actor,
            action=ModerationKind.REFUSED,
            draft_id=draft_id,
            target_kind=target_kind,
            target=target,
            note=note,
        )

    def _set_paused(
        self, s: Session, actor: Actor, account: str, chat_id: str | None, pause: bool
    ) -> Outcome:
        verb = "pause" if pause else "resume"
        state = account_store.by_name(s, account)
        if state is None:
            raise NotFoundError(
                f"there is no account {account!r} in the database yet; see `autoreply accounts "
                "list`"
            )
        target_kind, target = ("chat", chat_id) if chat_id else ("account", account)
        if not actor.may_act_on(account):
            self._refuse(
                s,
                state.id,
                actor,
                f"{verb}: not a moderator of this account",
                target_kind=target_kind,
                target=target,
            )
            raise _Refused(
                PermissionDeniedError(f"Only moderators of {account!r} can {verb} auto-replies.")
            )
        conversation_id = None
        if chat_id is None:
            account_store.set_paused(s, state.id, pause)
            scope = "for the whole account"
        else:
            conversation_id = account_store.conversation_id(s, state.id, chat_id)
            if conversation_id is None:
                raise NotFoundError(
                    f"account {account!r} has no chat {chat_id!r}; check the chat id"
                )
            account_store.set_chat_paused(s, conversation_id, pause)
            scope = "in this chat"
        draft_store.audit(
            s,
            account_id=state.id,
            actor=actor,
            action=ModerationKind.PAUSE if pause else ModerationKind.RESUME,
            target_kind=target_kind,
            target=target,
        )
        return Outcome(
            account,
            "paused" if pause else "resumed",
            f"Auto-replies {'paused' if pause else 'resumed'} {scope}.",
            conversation_id=conversation_id,
        )


def _no_draft(draft_id: int) -> str:
    return f"there is no draft #{draft_id}; see `autoreply queue list`"


def _why(item: QueueItem) -> str:
    return ", ".join(item.flags) or f"toxicity {item.toxicity:.2f}"
