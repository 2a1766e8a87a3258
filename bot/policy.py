"""Decides what to do with a message: ignore it, send a draft on our own, or ask a moderator.

Pure functions over domain values, so the rules are easy to read and test. The order of the
checks is the order of precedence.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import DecisionAction, Mode, Verdict, VerdictAction


@dataclass(frozen=True, slots=True)
class Ruling:
    action: DecisionAction
    reason: str


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


def after_draft(*, mode: Mode, input_verdict: Verdict, draft_verdict: Verdict) -> Ruling:
    """Auto-send only in auto mode, and only when neither the message nor the draft is flagged."""
    if mode is Mode.REVIEW_ALL:
        return Ruling(DecisionAction.REVIEW, "mode is review_all")
    if draft_verdict.action is VerdictAction.BLOCK:
        return Ruling(DecisionAction.REVIEW, _flagged("draft blocked", draft_verdict))
    if input_verdict.action is not VerdictAction.ALLOW:
        return Ruling(DecisionAction.REVIEW, _flagged("message flagged", input_verdict))
    if draft_verdict.action is not VerdictAction.ALLOW:
        return Ruling(DecisionAction.REVIEW, _flagged("draft flagged", draft_verdict))
    return Ruling(DecisionAction.AUTO, "mode is auto and the safety gate allows it")


def _flagged(prefix: str, verdict: Verdict) -> str:
    flags = ", ".join(verdict.flags) or f"toxicity {verdict.toxicity:.2f}"
    return f"{prefix}: {flags}"
