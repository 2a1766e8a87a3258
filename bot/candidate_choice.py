"""Best-of-n, last step: the safety gate's say over the sampled candidates.

The generator has already dropped the empty, gibberish and repetitive candidates and ranked
the rest by mean log-probability (`bot/nlp/candidates.py`). Here the gate checks the survivors
best first; the first one it does not block becomes the draft, blocked ones are marked, and
when none is left the account's fallback reply stands in and the draft records that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bot.domain import Candidate, Draft, DropReason, Verdict, VerdictAction

Check = Callable[[str], Verdict]


def choose(draft: Draft, check: Check, fallback_reply: str) -> tuple[Draft, Verdict]:
    """The draft to keep and the gate's verdict on it."""
    if len(draft.candidates) < 2:
        return draft, check(draft.text)
    chosen: tuple[Candidate, Verdict] | None = None
    marked: list[Candidate] = []
    for candidate in draft.candidates:
        alive = candidate.dropped in (None, DropReason.OUTRANKED)
        if not alive or chosen is not None:
            marked.append(_outranked(candidate) if alive else candidate)
            continue
        verdict = check(candidate.text)
        if verdict.action is VerdictAction.BLOCK:
            marked.append(replace(candidate, dropped=DropReason.BLOCKED))
            continue
        chosen = (replace(candidate, dropped=None), verdict)
        marked.append(chosen[0])
    if chosen is None:
        best = draft.candidates[0]
        fallback = replace(
            draft,
            text=fallback_reply,
            raw=best.raw,
            fallback_used=True,
            new_tokens=best.new_tokens,
            candidates=tuple(marked),
        )
        return fallback, check(fallback_reply)
    candidate, verdict = chosen
    ordered = (candidate, *(c for c in marked if c is not candidate))
    picked = replace(
        draft,
        text=candidate.text,
        raw=candidate.raw,
        fallback_used=False,
        new_tokens=candidate.new_tokens,
        candidates=ordered,
    )
    return picked, verdict


def _outranked(candidate: Candidate) -> Candidate:
    return replace(candidate, dropped=DropReason.OUTRANKED)
