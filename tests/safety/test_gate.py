from __future__ import annotations

from typing import Any

import pytest

from bot.config import Settings
from bot.domain import Verdict, VerdictAction
from bot.safety.gate import SafetyGate
from tests.safety.fakes import MappedToxicity


def gate(scores: dict[str, float] | None = None, **kwargs: Any) -> SafetyGate:
    return SafetyGate(MappedToxicity(scores), **kwargs)


@pytest.mark.parametrize(
    ("toxicity", "action", "flags"),
    [
        (0.0, VerdictAction.ALLOW, ()),
        (0.4999, VerdictAction.ALLOW, ()),
        (0.5, VerdictAction.REVIEW, ("toxic",)),
        (0.8499, VerdictAction.REVIEW, ("toxic",)),
        (0.85, VerdictAction.BLOCK, ("toxic",)),
        (1.0, VerdictAction.BLOCK, ("toxic",)),
    ],
)
def test_toxicity_thresholds(toxicity: float, action: VerdictAction, flags: tuple[str]) -> None:
    [verdict] = gate({"msg": toxicity}).check_inputs(["msg"])
    assert verdict == Verdict(action=action, toxicity=toxicity, flags=flags)


def test_any_flag_means_review_and_block_wins_over_flags() -> None:
    g = gate({"toxic a@b.io": 0.9})
    clean, pii, both = g.check_inputs(["hello there", "mail a@b.io", "toxic a@b.io"])
    assert clean.action is VerdictAction.ALLOW and not clean.flagged
    assert pii.action is VerdictAction.REVIEW and pii.flags == ("pii_email",)
    assert both.action is VerdictAction.BLOCK and both.flags == ("toxic", "pii_email")


def test_inputs_are_not_length_capped_but_drafts_are() -> None:
    g = gate(max_reply_chars=20)
    long_text = "a perfectly polite but rather long message"
    assert g.check_inputs([long_text])[0].action is VerdictAction.ALLOW
    draft = g.check_draft(long_text)
    assert draft.action is VerdictAction.REVIEW and draft.flags == ("too_long",)
    assert g.check_draft("   ").flags == ("empty",)
    assert g.check_draft("Thanks, on its way!").action is VerdictAction.ALLOW


def test_custom_thresholds_and_check_subset() -> None:
    g = gate({"meh": 0.3}, toxicity_review=0.2, toxicity_block=0.3, checks=["length"])
    assert g.check_inputs(["meh"])[0].action is VerdictAction.BLOCK
    assert g.check_inputs(["call +44 20 7946 0958"])[0].action is VerdictAction.ALLOW


def test_from_settings_uses_the_configured_limits() -> None:
    settings = Settings(toxicity_review=0.3, toxicity_block=0.6, max_reply_chars=5)
    g = SafetyGate.from_settings(settings, toxicity=MappedToxicity({"x": 0.4}))
    assert g.check_draft("x").flags == ("toxic",)
    assert g.check_draft("toolong").flags == ("too_long",)


def test_batches_go_to_the_model_once() -> None:
    scorer = MappedToxicity()
    SafetyGate(scorer).check_drafts(["a", "b", "c"])
    assert scorer.calls == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"toxicity_review": 0.9, "toxicity_block": 0.5}, "toxicity_review"),
        ({"toxicity_review": -0.1}, "toxicity_review"),
        ({"checks": ["pii", "nope"]}, "unknown safety checks"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gate(**kwargs)


def test_toxicity_that_comes_from_naming_a_group_is_reviewed_not_blocked() -> None:
    # The model scores "i am gay" as profane; with the group's name replaced it is not.
    g = gate({"i am gay": 0.98, "i am person": 0.02, "gay idiots": 0.99, "person idiots": 0.97})
    by_name, insult, plain = g.check_inputs(["i am gay", "gay idiots", "hello"])
    assert by_name == Verdict(VerdictAction.REVIEW, 0.98, ("toxic_identity",))
    assert insult == Verdict(VerdictAction.BLOCK, 0.99, ("toxic",))  # still an insult
    assert plain.action is VerdictAction.ALLOW
    # Only texts that are toxic and name a group are scored a second time.
    assert g.toxicity.calls[-1] == ["i am person", "person idiots"]  # type: ignore[attr-defined]


def test_the_real_profanity_model_and_words_for_groups() -> None:
    g = SafetyGate.from_settings(Settings())
    gay, lesbian, slur, friend = g.check_inputs(
        [
            "i am gay and my husband is too",
            "my sister is a lesbian",
            "shut up you stupid queer",
            "my friend is bisexual",
        ]
    )
    assert gay.flags == ("toxic_identity",) and gay.action is VerdictAction.REVIEW
    assert lesbian.action is not VerdictAction.BLOCK
    assert slur.action is VerdictAction.BLOCK and "toxic" in slur.flags
    assert friend.action is VerdictAction.ALLOW
