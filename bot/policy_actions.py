"""What the pipeline does, in the database, when the policy acts rather than only decides:
the self-harm safe response, a human handoff, a message in a handed-off chat, the away
message, strikes. Each function runs in the caller's unit of work, so the action, its audit
row, its outbox rows and the message's "handled" mark commit together.

Moderators hear of it through their chat (a NOTICE, or a CARD for something to answer); an
account without a moderators' chat (a console) has the audit trail and the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.accounts import Account
from bot.cards import card_text
from bot.domain import (
    HANDOFF_FLAG,
    Actor,
    ActorKind,
    Analysis,
    ChatKind,
    DecisionAction,
    Draft,
    DraftStatus,
    Incoming,
    ModerationKind,
    OutgoingKind,
    Verdict,
    VerdictAction,
    utcnow,
)
from bot.policy import NO_DRAFT_FLAGS
from bot.storage import chat_controls, history, outbox_store
from bot.storage import drafts as draft_store

POLICY = Actor(ActorKind.POLICY, "policy", "policy")
QUOTE_CHARS = 500


@dataclass(frozen=True, slots=True)
class Acted:
    """What an action did: the message's decision, and the conversations whose senders must
    wake (the user's chat, the moderators' chat)."""

    action: DecisionAction
    reason: str
    outbox_id: int | None = None
    draft_id: int | None = None
    wake: tuple[int, ...] = ()


def send_safe_response(
    s: Session,
    account: Account,
    incoming: Incoming,
    stored: history.Stored,
    analysis: Analysis,
    verdict: Verdict,
) -> Acted:
    """Answer a message about self-harm at once with the account's safe response (whatever
    the mode: it points to help and promises nothing), and alert the moderators now."""
    history.save_analysis(s, stored.message_id, analysis, verdict)
    outbox_id = _answer_now(s, stored, account.policy.safe_response)
    _audit(s, stored, incoming, ModerationKind.SAFE_REPLY, account.policy.safe_response)
    alert = _notice(
        s,
        account,
        stored,
        f"URGENT: a message in chat {incoming.chat_id} from {_who(incoming)} may be about "
        "self-harm. The safe response pointing to help was sent; please check on them now.\n\n"
        f"Message:\n{incoming.text[:QUOTE_CHARS]}",
    )
    reason = "self-harm: safe response sent, moderators alerted"
    history.mark_handled(s, stored.message_id, DecisionAction.AUTO, reason)
    return Acted(DecisionAction.AUTO, reason, outbox_id, wake=_wake(stored.conversation_id, alert))


def _answer(s: Session, stored: history.Stored, text: str) -> int:
    """Queue `text` as the account's reply to the stored message (no draft behind it)."""
    return outbox_store.enqueue(
        s,
        account_id=stored.account_id,
        conversation_id=stored.conversation_id,
        text=text,
        draft_id=None,
        reply_to_id=stored.message_id,
    )


def _answer_now(s: Session, stored: history.Stored, text: str) -> int:
    """`_answer`, first cancelling the chat's replies still waiting out a send delay, so this
    one is not queued behind them and nothing drafted earlier follows it."""
    chat_controls.cancel_pending_replies(s, stored.conversation_id)
    return _answer(s, stored, text)


def hand_off(
    s: Session,
    account: Account,
    incoming: Incoming,
    stored: history.Stored,
    analysis: Analysis,
    verdict: Verdict,
) -> Acted:
    """The user asked for a person: acknowledge, hand the chat to the moderators, tell them."""
    history.save_analysis(s, stored.message_id, analysis, verdict)
    chat_controls.set_handed_off(s, stored.conversation_id, True, by=POLICY)
    outbox_id = _answer_now(s, stored, account.policy.handoff_reply)
    _audit(s, stored, incoming, ModerationKind.HANDOFF, None, "the user asked for a person")
    alert = _notice(
        s,
        account,
        stored,
        f"{_who(incoming)} asked for a person in chat {incoming.chat_id}; the bot stops "
        "drafting there. Each new message arrives here as a card: reply to the card with your "
        "answer, or `autoreply queue reply ID TEXT`. When done, send /handback "
        f"{incoming.chat_id} (or `autoreply chats handback {account.name} {incoming.chat_id}`)."
        f"\n\nMessage:\n{incoming.text[:QUOTE_CHARS]}",
    )
    reason = "the user asked for a person: chat handed to the moderators"
    history.mark_handled(s, stored.message_id, DecisionAction.REVIEW, reason)
    return Acted(
        DecisionAction.REVIEW, reason, outbox_id, wake=_wake(stored.conversation_id, alert)
    )


def queue_for_person(
    s: Session,
    account: Account,
    incoming: Incoming,
    stored: history.Stored,
    analysis: Analysis,
    verdict: Verdict,
) -> Acted:
    """A message in a handed-off chat: no draft, a queue item for a moderator's own reply."""
    reason = "the chat is handed to people: waiting for a moderator's own reply"
    return _wait_for_person(s, account, stored, analysis, verdict, reason)


def hold_for_person(
    s: Session,
    account: Account,
    incoming: Incoming,
    stored: history.Stored,
    analysis: Analysis,
    verdict: Verdict,
) -> Acted:
    """A message the gate flags as an attack or a request for harm (policy.NO_DRAFT_FLAGS):
    no draft, a queue item for a moderator's own reply (or a reject)."""
    flags = ", ".join(f for f in verdict.flags if f in NO_DRAFT_FLAGS)
    reason = f"message flagged ({flags}): no draft made, waiting for a moderator's own reply"
    return _wait_for_person(s, account, stored, analysis, verdict, reason)


def _wait_for_person(
    s: Session,
    account: Account,
    stored: history.Stored,
    analysis: Analysis,
    verdict: Verdict,
    reason: str,
) -> Acted:
    history.save_analysis(s, stored.message_id, analysis, verdict)
    placeholder = Draft(text="", raw="", fallback_used=False, model=HANDOFF_FLAG)
    draft_id = draft_store.create_draft(
        s,
        message_id=stored.message_id,
        draft=placeholder,
        verdict=Verdict(VerdictAction.REVIEW, 0.0, (HANDOFF_FLAG,)),
        status=DraftStatus.QUEUED,
    )
    card = None
    if account.review_chat_id is not None:
        card = enqueue_card(
            s,
            stored,
            draft_id,
            account.review_chat_id,
            f"{reason}; reply to this card with your answer",
        )
    history.mark_handled(s, stored.message_id, DecisionAction.REVIEW, reason)
    return Acted(DecisionAction.REVIEW, reason, draft_id=draft_id, wake=_wake(card))


def controls_changed(
    s: Session,
    account: Account,
    stored: history.Stored,
    analysis: Analysis,
    verdict: Verdict,
) -> Acted | None:
    """A ban or a handoff that landed while the model was drafting (the pipeline read the
    controls before): checked again in the unit of work that would keep the draft, which is
    then dropped. Banned: the message stays metadata only and nothing is sent; handed off: it
    waits for a moderator's own reply, as a handed-off chat's messages do. None: unchanged."""
    now = chat_controls.controls(s, stored.conversation_id, stored.user_id, lock=True)
    if now.banned:
        reason = "the user was banned while the reply was drafted (kept as metadata only)"
        history.forget_text(s, stored.message_id)
        history.mark_handled(s, stored.message_id, DecisionAction.IGNORE, reason)
        return Acted(DecisionAction.IGNORE, reason)
    if now.handed_off:
        reason = (
            "the chat was handed to people while the reply was drafted: waiting for a "
            "moderator's own reply"
        )
        return _wait_for_person(s, account, stored, analysis, verdict, reason)
    return None


def send_away(
    s: Session, account: Account, stored: history.Stored, last_sent: datetime | None
) -> int | None:
    """Outside business hours with `outside = "away"`: the away message, once per chat and
    absence (again only after the account was open in between). Returns its outbox id."""
    hours = account.policy.hours
    now = utcnow()
    if hours is None or (last_sent is not None and not hours.reopened_between(last_sent, now)):
        return None
    chat_controls.mark_away_sent(s, stored.conversation_id, now)
    return _answer(s, stored, hours.away_message)


def send_after(account: Account) -> datetime | None:
    """When an auto reply may go out: after the account's send delay, or at once (None)."""
    delay = account.policy.send_delay_s
    return utcnow() + timedelta(seconds=delay) if delay > 0 else None


def enqueue_card(
    s: Session, stored: history.Stored, draft_id: int, chat_id: str, reason: str
) -> int:
    """Queue the moderators' card in the same transaction as the draft, so a crash can never
    leave a queued draft that no moderator was shown. Returns the moderators' conversation."""
    item = draft_store.get_item(s, draft_id)
    assert item is not None
    conversation_id = history.ensure_conversation_id(
        s, stored.account_id, chat_id, ChatKind.GROUP, "moderators"
    )
    outbox_store.enqueue(
        s,
        account_id=stored.account_id,
        conversation_id=conversation_id,
        text=card_text(item, reason),
        draft_id=draft_id,
        reply_to_id=None,
        kind=OutgoingKind.CARD,
    )
    return conversation_id


def _notice(s: Session, account: Account, stored: history.Stored, text: str) -> int | None:
    chat_id = account.review_chat_id
    if chat_id is None:
        return None
    conversation_id = history.ensure_conversation_id(
        s, stored.account_id, chat_id, ChatKind.GROUP, "moderators"
    )
    outbox_store.enqueue(
        s,
        account_id=stored.account_id,
        conversation_id=conversation_id,
        text=text,
        draft_id=None,
        reply_to_id=None,
        kind=OutgoingKind.NOTICE,
    )
    return conversation_id


def _audit(
    s: Session,
    stored: history.Stored,
    incoming: Incoming,
    kind: ModerationKind,
    after: str | None,
    note: str | None = None,
) -> None:
    draft_store.audit(
        s,
        account_id=stored.account_id,
        actor=POLICY,
        action=kind,
        target_kind="chat",
        target=incoming.chat_id,
        after_text=after,
        note=note,
    )


def _who(incoming: Incoming) -> str:
    """Names the user in a notice; the tag lets erase-user find the notices that quote them."""
    name = incoming.user_name or "a user"
    return f"{name} {outbox_store.user_tag(str(incoming.user_id))}"


def _wake(*conversations: int | None) -> tuple[int, ...]:
    return tuple(c for c in conversations if c is not None)
