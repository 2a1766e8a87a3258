"""handle(Incoming) -> Decision: the only place that strings the stages together.

store -> analyse -> decide -> draft -> check the draft -> send or queue.

Database work runs in worker threads and generation in the model's own executor, so the event
loop (other chats, the scheduler, platform I/O) keeps going while one message is handled. The
inbound message is committed first; its analysis, draft, outbox row and "handled" mark are
committed together at the end, so a crash in between leaves a stored but unhandled message that
`resume_unhandled` picks up on the next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from bot import policy_actions as actions
from bot.accounts import Account
from bot.business_hours import OutsideHours
from bot.candidate_choice import choose
from bot.domain import (
    Analysis,
    Decision,
    DecisionAction,
    Draft,
    DraftRequest,
    DraftStatus,
    Incoming,
    ModerationKind,
    Turn,
    Verdict,
    as_utc,
    utcnow,
)
from bot.errors import ConfigError
from bot.events import NO_EVENTS, ServiceEvents
from bot.handoff import asks_for_person
from bot.keyed_lock import KeyedLocks
from bot.nlp.heads import SafetyHeadPolicy, with_safety_head
from bot.outbox import Outbox
from bot.policy import NO_DRAFT_FLAGS, SELF_HARM, Ruling, after_draft, before_draft, screen
from bot.redaction import redact_draft, redact_incoming
from bot.safety.context import CheckContext
from bot.storage import accounts as account_store
from bot.storage import chat_controls, history, outbox_store
from bot.storage import drafts as draft_store
from bot.storage.db import Database

log = logging.getLogger(__name__)

POLICY = actions.POLICY
HANDLE_ATTEMPTS = 3
RESUME_MAX_AGE = timedelta(hours=24)


class Analyser(Protocol):
    def classify_many(self, texts: Sequence[str]) -> list[Analysis]: ...


class Gate(Protocol):
    """The safety gate (bot/safety/gate.py); `context` carries the account's rules and, for a
    draft, the message it answers and the persona."""

    def check_inputs(self, texts: Sequence[str], context: CheckContext = ...) -> list[Verdict]: ...

    def check_draft(self, text: str, context: CheckContext = ...) -> Verdict: ...


class Drafter(Protocol):
    """Drafts replies. Each request carries its account's style and adapter, so one drafter
    serves every account (and can batch requests of different accounts together)."""

    async def adraft(self, request: DraftRequest) -> Draft: ...


Activity = Callable[[Incoming], AbstractAsyncContextManager[None]]
# A policy action that answers a message without a model draft (bot/policy_actions.py).
Act = Callable[[Session, Account, Incoming, history.Stored, Analysis, Verdict], actions.Acted]


class Pipeline:
    def __init__(
        self,
        *,
        db: Database,
        classifier: Analyser,
        gate: Gate,
        drafter: Drafter | None,
        outbox: Outbox | None,
        accounts: Mapping[str, Account],
        history_turns: int,
        classifiers: Mapping[str, Analyser] | None = None,
        adapters: Mapping[str, str] | None = None,
        activity: Activity | None = None,
        redact_pii: bool = False,
        events: ServiceEvents = NO_EVENTS,
        safety_head: SafetyHeadPolicy | None = None,
    ) -> None:
        """`accounts` maps each served account's name to its settings (mode, cooldown,
        moderators' chat, reply style); `classifiers` optionally gives an account its own
        classifier (its intent labels); `adapters` names the loaded adapter each account's
        drafts use (absent: the model host's active one); `activity` wraps drafting (e.g. a
        typing indicator); `redact_pii` scrubs personal data out of messages and drafts
        before they are stored (bot/redaction.py); `events` hears of drafts, verdicts and
        decisions (metrics, bot/events.py); `safety_head` says how a promoted safety head's
        answer changes the gate's verdict (its labels' verdicts and confidence)."""
        self._db = db
        self._classifier = classifier
        self._classifiers = dict(classifiers or {})
        self._gate = gate
        self._safety_head = safety_head or SafetyHeadPolicy()
        self._drafter = drafter
        self._outbox = outbox
        self._accounts = dict(accounts)
        self._adapters = dict(adapters or {})
        self._history_turns = history_turns
        self._activity = activity
        self._redact_pii = redact_pii
        self._events = events
        self._chat_locks = KeyedLocks()
        self._background: set[asyncio.Task[Decision]] = set()

    def set_adapter(self, account: str, adapter: str) -> None:
        """Draft `account`'s next messages with `adapter` (a name loaded in the model host;
        "__base__" for none). Drafts already handed to the drafter keep theirs."""
        self._adapters[account] = adapter

    def set_classifier(self, account: str, classifier: Analyser) -> None:
        """Analyse `account`'s next messages with `classifier` (a promoted head, say)."""
        self._classifiers[account] = classifier

    async def handle(self, incoming: Incoming) -> Decision:
        """Store and handle one message, returning once it is decided.

        Messages of one chat are handled one at a time, in call order.
        """
        incoming = self._redacted(incoming)
        async with self._chat_locks.hold(_chat_key(incoming)):
            stored = await asyncio.to_thread(self._store, incoming)
            if stored.duplicate:
                return _duplicate(stored)
            return await self._process(incoming, stored)

    async def accept(self, incoming: Incoming) -> Decision | None:
        """Store one message and return as soon as it is committed; handle it in the background.

        For platforms that must acknowledge deliveries quickly: once this returns, the message
        survives a crash (an unhandled message is resumed on the next start). Returns the
        duplicate decision for a redelivery, else None. Calls for one chat are handled in call
        order (each background task queues on the chat's FIFO lock as soon as it is created).
        """
        incoming = self._redacted(incoming)
        stored = await asyncio.to_thread(self._store, incoming)
        if stored.duplicate:
            return _duplicate(stored)
        self._spawn(incoming, stored)
        return None

    def _redacted(self, incoming: Incoming) -> Incoming:
        return redact_incoming(incoming) if self._redact_pii else incoming

    def _spawn(self, incoming: Incoming, stored: history.Stored) -> None:
        task = asyncio.create_task(self._in_order(incoming, stored), name="pipeline-message")
        self._background.add(task)
        task.add_done_callback(self._finished)

    async def drain(self) -> None:
        """Wait for background handling started by `accept` (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def cancel_background(self) -> None:
        """Stop background handling; unfinished messages are resumed on the next start."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _in_order(self, incoming: Incoming, stored: history.Stored) -> Decision:
        """Handle in the chat's order, trying again a few times if a stage fails (e.g. the
        database blinked); after that the message stays unhandled until the next start."""
        async with self._chat_locks.hold(_chat_key(incoming)):
            for attempt in range(1, HANDLE_ATTEMPTS + 1):
                try:
                    return await self._process(incoming, stored)
                except Exception:
                    if attempt == HANDLE_ATTEMPTS:
                        raise
                    log.exception("handling message %d failed (try %d)", stored.message_id, attempt)
                    await asyncio.sleep(2.0**attempt)
            raise AssertionError("unreachable")

    def _finished(self, task: asyncio.Task[Decision]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The one place background handling errors are logged; the message stays unhandled
            # in the database and is retried on the next start.
            log.error("handling a message failed", exc_info=task.exception())

    def account(self, name: str) -> Account:
        try:
            return self._accounts[name]
        except KeyError:
            raise ConfigError(
                f"a message arrived for account {name!r}, which this process does not serve; "
                f"serving: {', '.join(self._accounts) or 'none'}"
            ) from None

    async def resume_unhandled(self, platform: str, account: str) -> int:
        """Queue the messages that were stored but not handled when the process last stopped.

        They are handled in the background, each chat in its stored order; call this before a
        channel starts taking new messages, so that older messages keep their place in line.
        """
        ids = await asyncio.to_thread(self._unhandled, platform, account)
        if ids:
            log.info("resuming %d stored messages that were not handled yet", len(ids))
        too_old = utcnow() - RESUME_MAX_AGE
        for message_id in ids:
            incoming, stored = await asyncio.to_thread(self._load, message_id)
            if as_utc(incoming.sent_at) < too_old:
                # Answering a day late does more harm than good; it stays visible as ignored.
                ruling = Ruling(DecisionAction.IGNORE, "too old to answer after a restart")
                await asyncio.to_thread(self._mark, stored, ruling)
                continue
            self._spawn(incoming, stored)
        return len(ids)

    def _mark(self, stored: history.Stored, ruling: Ruling, *, forget_text: bool = False) -> None:
        with self._db.session() as s:
            if forget_text:  # banned after the message was stored: drop the text it kept
                history.forget_text(s, stored.message_id)
            history.mark_handled(s, stored.message_id, ruling.action, ruling.reason)

    # --- stages ---------------------------------------------------------------------------

    def _store(self, incoming: Incoming) -> history.Stored:
        with self._db.session() as s:
            return history.ingest(s, incoming)

    def _unhandled(self, platform: str, account: str) -> list[int]:
        with self._db.session() as s:
            info = account_store.ensure(s, platform, account)
            return history.unhandled_inbound(s, info.id)

    def _load(self, message_id: int) -> tuple[Incoming, history.Stored]:
        with self._db.session() as s:
            return history.load_incoming(s, message_id)

    async def _process(self, incoming: Incoming, stored: history.Stored) -> Decision:
        decision = await self._decide(incoming, stored)
        self._events.decided(incoming.account, decision.action, decision.draft_id is not None)
        return decision

    async def _decide(self, incoming: Incoming, stored: history.Stored) -> Decision:
        account = self.account(incoming.account)
        controls = await asyncio.to_thread(self._controls, stored)
        if controls.banned:  # not even analysed: a banned user's text is not kept
            banned = Ruling(DecisionAction.IGNORE, "the user is banned (kept as metadata only)")
            await asyncio.to_thread(self._mark, stored, banned, forget_text=True)
            return Decision(banned.action, banned.reason, message_id=stored.message_id)
        analysis, verdict = await asyncio.to_thread(self._analyse, account.name, incoming.text)
        self._events.verdict("input", verdict.action, verdict.flags)
        paused, turns, cooling = await asyncio.to_thread(self._context, account, stored)
        mode = account.mode
        ruling = before_draft(
            mode=mode, paused=paused, addressed=incoming.addressed, text=incoming.text
        )
        act: Act | None = None
        if incoming.addressed and SELF_HARM in verdict.flags:  # before mode and pause: safety
            act = actions.send_safe_response
        elif ruling is None and controls.handed_off:
            act = actions.queue_for_person
        elif ruling is None and account.policy.handoff and asks_for_person(incoming.text):
            act = actions.hand_off
        elif ruling is None and not NO_DRAFT_FLAGS.isdisjoint(verdict.flags):
            act = actions.hold_for_person
        if act is not None:
            acted = await asyncio.to_thread(
                self._act, act, account, incoming, stored, analysis, verdict
            )
            return self._acted(acted, stored)
        if ruling is None:
            ruling = screen(account.policy, analysis)
        if ruling is None and cooling:
            ruling = Ruling(DecisionAction.IGNORE, "cooldown: this user was answered moments ago")
        if ruling is None and self._drafter is None:
            ruling = Ruling(DecisionAction.IGNORE, "no reply model is loaded")
        if ruling is not None:
            await asyncio.to_thread(self._finish_ignored, stored, analysis, verdict, ruling)
            return Decision(ruling.action, ruling.reason, message_id=stored.message_id)

        assert self._drafter is not None
        request = DraftRequest(
            tuple(turns),
            incoming.text,
            account=account.name,
            style=account.style,
            adapter=self._adapters.get(account.name),
        )
        async with self._activity(incoming) if self._activity else nullcontext():
            started = time.perf_counter()
            draft = await self._drafter.adraft(request)
            self._events.generated(account.name, time.perf_counter() - started)
        if self._redact_pii:  # before the gate and storage: what is kept is what is checked
            draft = redact_draft(draft)
        context = account.check_context(incoming.text)
        draft, draft_verdict = await asyncio.to_thread(
            choose,
            draft,
            lambda text: self._gate.check_draft(text, context),
            account.style.fallback_reply,
        )
        self._events.verdict("draft", draft_verdict.action, draft_verdict.flags)
        hours = account.policy.hours
        open_now = hours is None or hours.is_open(utcnow())
        ruling = after_draft(
            mode=mode,
            input_verdict=verdict,
            draft_verdict=draft_verdict,
            policy=account.policy,
            analysis=analysis,
            open_now=open_now,
        )
        away = (
            hours is not None
            and not open_now
            and hours.outside is OutsideHours.AWAY
            and ruling.action is DecisionAction.REVIEW
        )
        finished = await asyncio.to_thread(
            self._finish_drafted,
            account,
            stored,
            analysis,
            verdict,
            draft,
            draft_verdict,
            ruling,
            away,
            controls.away_sent_at,
        )
        if isinstance(finished, actions.Acted):  # banned or handed off while drafting
            return self._acted(finished, stored)
        draft_id, outbox_id, card_chat = finished
        if self._outbox is not None:
            if outbox_id is not None:
                self._outbox.notify(stored.conversation_id)
            if card_chat is not None:
                self._outbox.notify(card_chat)
        return Decision(
            ruling.action,
            ruling.reason,
            message_id=stored.message_id,
            draft_id=draft_id,
            outbox_id=outbox_id,
            reply_text=draft.text,
        )

    def _analyse(self, account: str, text: str) -> tuple[Analysis, Verdict]:
        classifier = self._classifiers.get(account, self._classifier)
        (analysis,) = classifier.classify_many([text])
        (verdict,) = self._gate.check_inputs([text], self._accounts[account].check_context())
        # A promoted safety head makes the verdict stricter, or clears toxicity that only a
        # word for a group explained (bot/nlp/heads.py: with_safety_head).
        return analysis, with_safety_head(verdict, analysis, self._safety_head)

    def _context(self, account: Account, stored: history.Stored) -> tuple[bool, list[Turn], bool]:
        with self._db.session() as s:
            state = history.chat_state(s, stored)
            turns = history.recent_turns(
                s, stored.conversation_id, stored.message_id, self._history_turns
            )
            cooldown = account.user_cooldown_s
            cooling = bool(
                cooldown > 0
                and stored.user_id is not None
                and history.answered_recently(
                    s,
                    stored.conversation_id,
                    stored.user_id,
                    before_message_id=stored.message_id,
                    within=timedelta(seconds=cooldown),
                )
            )
        return state.paused, turns, cooling

    def _finish_ignored(
        self,
        stored: history.Stored,
        analysis: Analysis,
        verdict: Verdict,
        ruling: Ruling,
    ) -> None:
        with self._db.session() as s:
            history.save_analysis(s, stored.message_id, analysis, verdict)
            if ruling.strike and stored.user_id is not None:
                chat_controls.add_strike(s, stored.user_id)
            history.mark_handled(s, stored.message_id, ruling.action, ruling.reason)

    def _controls(self, stored: history.Stored) -> chat_controls.Controls:
        with self._db.session() as s:
            return chat_controls.controls(s, stored.conversation_id, stored.user_id)

    def _act(
        self,
        act: Act,
        account: Account,
        incoming: Incoming,
        stored: history.Stored,
        analysis: Analysis,
        verdict: Verdict,
    ) -> actions.Acted:
        with self._db.session() as s:
            return act(s, account, incoming, stored, analysis, verdict)

    def _acted(self, acted: actions.Acted, stored: history.Stored) -> Decision:
        if self._outbox is not None:
            for conversation_id in acted.wake:
                self._outbox.notify(conversation_id)
        return Decision(
            acted.action,
            acted.reason,
            message_id=stored.message_id,
            draft_id=acted.draft_id,
            outbox_id=acted.outbox_id,
        )

    def _finish_drafted(
        self,
        account: Account,
        stored: history.Stored,
        analysis: Analysis,
        verdict: Verdict,
        draft: Draft,
        draft_verdict: Verdict,
        ruling: Ruling,
        away: bool = False,
        away_sent_at: datetime | None = None,
    ) -> tuple[int, int | None, int | None] | actions.Acted:
        """Commit the outcome; returns the draft, its outbox row (or the away message's) and
        the card's chat. `away`: outside business hours with an away message, last sent to
        this chat at `away_sent_at` (None: never). A ban or handoff that came while drafting
        wins instead: what it did to the message is returned and the draft is not kept."""
        auto = ruling.action is DecisionAction.AUTO
        card_chat = None
        with self._db.session() as s:
            late = actions.controls_changed(s, account, stored, analysis, verdict)
            if late is not None:
                return late
            history.save_analysis(s, stored.message_id, analysis, verdict)
            draft_id = draft_store.create_draft(
                s,
                message_id=stored.message_id,
                draft=draft,
                verdict=draft_verdict,
                status=DraftStatus.APPROVED if auto else DraftStatus.QUEUED,
            )
            outbox_id = None
            if auto:
                draft_store.audit(
                    s,
                    account_id=stored.account_id,
                    actor=POLICY,
                    action=ModerationKind.AUTO_SEND,
                    draft_id=draft_id,
                    after_text=draft.text,
                    note=ruling.reason,
                )
                outbox_id = outbox_store.enqueue(
                    s,
                    account_id=stored.account_id,
                    conversation_id=stored.conversation_id,
                    text=draft.text,
                    draft_id=draft_id,
                    reply_to_id=stored.message_id,
                    not_before=actions.send_after(account),
                )
            elif away:
                outbox_id = actions.send_away(s, account, stored, away_sent_at)
            review_chat = account.review_chat_id
            if not auto and review_chat is not None:
                card_chat = actions.enqueue_card(s, stored, draft_id, review_chat, ruling.reason)
            history.mark_handled(s, stored.message_id, ruling.action, ruling.reason)
        if draft.fallback_used:  # the generator already warned; this ties it to the draft
            # Ids and lengths only: logs must not carry what users or the model wrote.
            log.info(
                "message %d: the model's draft was empty after clean-up, the fallback reply "
                "stands in (draft %d, raw output of %d characters; see the draft)",
                stored.message_id,
                draft_id,
                len(draft.raw),
            )
        return draft_id, outbox_id, card_chat


def _chat_key(incoming: Incoming) -> tuple[str, str, str]:
    return (incoming.platform, incoming.account, incoming.chat_id)


def _duplicate(stored: history.Stored) -> Decision:
    return Decision(
        DecisionAction.IGNORE,
        "already received (duplicate delivery)",
        message_id=stored.message_id or None,
        duplicate=True,
    )
