from __future__ import annotations

import pytest

from bot.domain import DecisionAction, Mode, Verdict, VerdictAction
from bot.policy import after_draft, before_draft

ALLOW = Verdict(VerdictAction.ALLOW, 0.01)
REVIEW = Verdict(VerdictAction.REVIEW, 0.1, ("pii_phone",))
BLOCK = Verdict(VerdictAction.BLOCK, 0.97, ("toxic",))


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"addressed": False}, "not addressed"),
        ({"mode": Mode.OFF}, "mode is off"),
        ({"paused": True}, "paused"),
        ({"text": " \n"}, "no text"),
    ],
)
def test_before_draft_ignores(kwargs: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {"mode": Mode.AUTO, "paused": False, "addressed": True, "text": "hi"}
    args.update(kwargs)
    ruling = before_draft(**args)  # type: ignore[arg-type]
    assert ruling is not None and ruling.action is DecisionAction.IGNORE
    assert reason in ruling.reason


def test_before_draft_lets_addressed_text_through() -> None:
    assert before_draft(mode=Mode.AUTO, paused=False, addressed=True, text="hi") is None


@pytest.mark.parametrize(
    ("mode", "inp", "draft", "action"),
    [
        (Mode.AUTO, ALLOW, ALLOW, DecisionAction.AUTO),
        (Mode.REVIEW_ALL, ALLOW, ALLOW, DecisionAction.REVIEW),
        (Mode.AUTO, REVIEW, ALLOW, DecisionAction.REVIEW),
        (Mode.AUTO, ALLOW, REVIEW, DecisionAction.REVIEW),
        (Mode.AUTO, ALLOW, BLOCK, DecisionAction.REVIEW),
    ],
)
def test_after_draft(mode: Mode, inp: Verdict, draft: Verdict, action: DecisionAction) -> None:
    assert after_draft(mode=mode, input_verdict=inp, draft_verdict=draft).action is action


def test_flag_names_reach_the_reason() -> None:
    ruling = after_draft(mode=Mode.AUTO, input_verdict=ALLOW, draft_verdict=REVIEW)
    assert "pii_phone" in ruling.reason
