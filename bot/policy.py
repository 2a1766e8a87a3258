"""Decides what to do with a message: ignore it, send a draft on our own, or ask a moderator.

Pure functions over domain values, so the rules are easy to read and test. The order of the
checks is the order of precedence:

before drafting (`before_draft`, then `screen`): not addressed, mode off, paused, no text ->
ignore; then the account's rules may ignore a message outright (spam; abuse, counted against
the user) so no draft is made for it.

after drafting (`after_draft`): review_all -> review; a blocked draft -> review (a block is never
sent); anything the gate flagged, in the message or the draft -> review (a language the
classifiers do not cover is one such flag); a rule that asks for review (a negative complaint);
a classifier that is not sure -> review; outside business hours -> review unless the account
says `auto`; else auto.

Self-harm, human handoff and bans come before all of this and live in the pipeline, since they
act (send, notify, store differently) rather than only decide.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.business_hours import BusinessHours, OutsideHours
from bot.domain import Analysis, DecisionAction, Mode, Sentiment, Verdict, VerdictAction

NON_ENGLISH = "non_english"  # the input flag of bot/safety/language.py
SELF_HARM = "self_harm"  # the input flag of the self-harm check
# Input flags whose messages never reach the reply model: a moderator answers them. Drafting a
# reply to "ignore your instructions..." or to a request for weapons only feeds the attack to
# the model and makes a draft nobody should send.
NO_DRAFT_FLAGS = frozenset({"injection", "harmful_request", "threat"})
DEFAULT_HANDOFF_REPLY = (
    "Of course, I'm passing you to a member of our team. They will answer you here soon."
)
DEFAULT_SAFE_RESPONSE = (
    "I'm really sorry you're going through this. You don't have to face it alone: please "
    "reach out to someone you trust, or to a crisis line (in the US call or text 988; "
    "elsewhere, findahelpline.com lists free, confidential lines). If you are in danger right "
    "now, call your local emergency number. A member of our team has been told and will "
    "reach out too."
)


@dataclass(frozen=True, slots=True)
class Ruling:
    action: DecisionAction
    reason: str
    strike: bool = False  # count this message against its sender


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """When a message's intent (and, if given, sentiment) match, take `action`.

    `ignore` ends it before drafting; `review` drafts and queues; `auto` drafts and lets the
    other checks decide. `strike` counts the message against its sender.
    """

    action: DecisionAction
    intent: str | None = None
    sentiment: Sentiment | None = None
    strike: bool = False

    def matches(self, analysis: Analysis) -> bool:
        return (self.intent is None or analysis.intent == self.intent) and (
            self.sentiment is None or analysis.sentiment is self.sentiment
        )

    def describe(self) -> str:
        parts = [p for p in (self.intent, self.sentiment and self.sentiment.value) if p]
        return " ".join(parts) or "any message"


DEFAULT_RULES = (
    PolicyRule(DecisionAction.REVIEW, "complaint", Sentiment.NEGATIVE),
    PolicyRule(DecisionAction.IGNORE, "spam"),
    PolicyRule(DecisionAction.IGNORE, "abuse", strike=True),
)


@dataclass(frozen=True, slots=True)
class Policy:
    """An account's decision policy (its `[accounts.policy]` table, resolved)."""

    rules: tuple[PolicyRule, ...] = DEFAULT_RULES
    min_confidence: float = 0.2  # intent or sentiment probability below this -> review
    handoff: bool = True  # hand the chat to people when the user asks for one
    handoff_reply: str = DEFAULT_HANDOFF_REPLY
    safe_response: str = DEFAULT_SAFE_RESPONSE
    send_delay_s: float = 0.0  # auto replies wait this long in the outbox (cancellable)
    hours: BusinessHours | None = None  # None: always open

    def rule_for(self, analysis: Analysis) -> PolicyRule | None:
        """The first rule that matches, in config order."""
        return next((rule for rule in self.rules if rule.matches(analysis)), None)


def before_draft(*, mode: Mode, paused: bool, addressed: bool, text: str) -> Ruling | None:
    """Rule out messages that get no draft at all. None means: go on and draft a reply."""
    if not addressed:
        return Ruling(DecisionAction.IGNORE, "not addressed to the bot (kept as context)")
    if mode is Mode.OFF:
        return Ruling(DecisionAction.IGNORE, "mode is off")
    if paused:
        return Ruling(DecisionAction.IGNORE, "auto-replies are paused here")
    if not text.strip():
        return Ruling(DecisionAction.IGNORE, "no text to answer")
    return None


def screen(policy: Policy, analysis: Analysis) -> Ruling | None:
    """A rule that ignores the message (no draft); None: go on and draft."""
    rule = policy.rule_for(analysis)
    if rule is None or rule.action is not DecisionAction.IGNORE:
        return None
    counted = ", counted against the user" if rule.strike else ""
    return Ruling(
        DecisionAction.IGNORE, f"policy: {rule.describe()} is ignored{counted}", rule.strike
    )


def after_draft(
    *,
    mode: Mode,
    input_verdict: Verdict,
    draft_verdict: Verdict,
    policy: Policy | None = None,
    analysis: Analysis | None = None,
    open_now: bool = True,
) -> Ruling:
    """Auto-send only in auto mode, and only when nothing asks for a person to look first."""
    if mode is Mode.REVIEW_ALL:
        return Ruling(DecisionAction.REVIEW, "mode is review_all")
    if draft_verdict.action is VerdictAction.BLOCK:
        return Ruling(DecisionAction.REVIEW, _flagged("draft blocked", draft_verdict))
    if NON_ENGLISH in input_verdict.flags:
        return Ruling(DecisionAction.REVIEW, "a language the classifiers do not cover")
    if input_verdict.action is not VerdictAction.ALLOW or input_verdict.flagged:
        return Ruling(DecisionAction.REVIEW, _flagged("message flagged", input_verdict))
    if draft_verdict.action is not VerdictAction.ALLOW or draft_verdict.flagged:
        return Ruling(DecisionAction.REVIEW, _flagged("draft flagged", draft_verdict))
    policy = policy or Policy()
    if analysis is not None:
        rule = policy.rule_for(analysis)
        if rule is not None and rule.action is DecisionAction.REVIEW:
            return Ruling(DecisionAction.REVIEW, f"policy: {rule.describe()} goes to review")
        unsure = _unsure(analysis, policy.min_confidence)
        if unsure:
            return Ruling(DecisionAction.REVIEW, unsure)
    if not open_now and policy.hours is not None and policy.hours.outside is not OutsideHours.AUTO:
        return Ruling(DecisionAction.REVIEW, "outside business hours")
    return Ruling(DecisionAction.AUTO, "mode is auto and the safety gate allows it")


def _unsure(analysis: Analysis, threshold: float) -> str | None:
    low = [
        f"{task} {score:.2f}"
        for task, score in (
            ("intent", analysis.intent_score),
            ("sentiment", analysis.sentiment_score),
        )
        if score < threshold
    ]
    if not low:
        return None
    return f"classifier unsure ({', '.join(low)} < {threshold:.2f})"


def _flagged(prefix: str, verdict: Verdict) -> str:
    flags = ", ".join(verdict.flags) or f"toxicity {verdict.toxicity:.2f}"
    return f"{prefix}: {flags}"
