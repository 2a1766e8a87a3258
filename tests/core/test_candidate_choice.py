"""Best-of-n, last step: the gate picks among the ranked candidates."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.candidate_choice import choose
from bot.domain import Candidate, Draft, DropReason, Verdict, VerdictAction

FALLBACK = "We will get back to you."


def draft(*candidates: Candidate) -> Draft:
    best = candidates[0]
    return Draft(best.text, best.raw, False, "m", candidates=candidates)


@dataclass
class ScriptedGate:
    """Blocks or flags the texts it is told to; remembers what it checked, in order."""

    blocked: set[str]
    review: set[str] = field(default_factory=set)
    checked: list[str] = field(default_factory=list)

    def __call__(self, text: str) -> Verdict:
        self.checked.append(text)
        if text in self.blocked:
            return Verdict(VerdictAction.BLOCK, 0.99, ("toxicity",))
        if text in self.review:
            return Verdict(VerdictAction.REVIEW, 0.6, ("toxicity",))
        return Verdict(VerdictAction.ALLOW, 0.0)


GOOD = Candidate("Sorry about that, we will fix it.", " Sorry about that, we will fix it.", -1.0)
RUDE = Candidate("That is your problem.", " That is your problem.", -0.5)
OK = Candidate("Happy to help.", " Happy to help.", -2.0, dropped=DropReason.OUTRANKED)
NOISE = Candidate("", " ...", -0.1, dropped=DropReason.EMPTY)


def test_a_blocked_best_candidate_gives_way_to_the_next() -> None:
    check = ScriptedGate(blocked={RUDE.text})
    chosen, verdict = choose(draft(RUDE, GOOD, OK, NOISE), check, FALLBACK)
    assert chosen.text == GOOD.text and not chosen.fallback_used
    assert verdict.action is VerdictAction.ALLOW
    reasons = {c.text: c.dropped for c in chosen.candidates}
    assert reasons == {
        GOOD.text: None,
        RUDE.text: DropReason.BLOCKED,
        OK.text: DropReason.OUTRANKED,
        "": DropReason.EMPTY,
    }
    assert chosen.candidates[0].text == GOOD.text  # the used one first
    assert check.checked == [RUDE.text, GOOD.text]


def test_when_no_candidate_survives_the_fallback_stands_in_and_says_so() -> None:
    check = ScriptedGate(blocked={RUDE.text, GOOD.text})
    chosen, verdict = choose(draft(RUDE, GOOD, NOISE), check, FALLBACK)
    assert chosen.text == FALLBACK and chosen.fallback_used
    assert chosen.raw == RUDE.raw  # what the model said stays visible
    assert [c.dropped for c in chosen.candidates] == [
        DropReason.BLOCKED,
        DropReason.BLOCKED,
        DropReason.EMPTY,
    ]
    assert verdict.action is VerdictAction.ALLOW  # the fallback itself was checked


def test_a_candidate_for_review_is_kept_with_its_verdict() -> None:
    check = ScriptedGate(blocked=set(), review={GOOD.text})
    chosen, verdict = choose(draft(GOOD, OK), check, FALLBACK)
    assert chosen.text == GOOD.text and verdict.action is VerdictAction.REVIEW


def test_a_single_draft_is_only_checked() -> None:
    single = Draft("hi", "hi", False, "m")
    check = ScriptedGate(blocked={"hi"})
    chosen, verdict = choose(single, check, FALLBACK)
    assert chosen is single and verdict.action is VerdictAction.BLOCK
