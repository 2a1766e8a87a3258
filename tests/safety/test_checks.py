from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from bot.safety import registered_checks
from bot.safety.gate import TOXIC
from bot.safety.language import LanguageCheck, looks_non_english
from bot.safety.length import LengthCheck
from bot.safety.registry import Check, Limits, Stage, register_check

DOC = Path(__file__).resolve().parents[2] / "docs" / "SAFETY_FLAGS.md"


def test_registry_holds_the_check_families_in_report_order() -> None:
    names = list(registered_checks())
    assert names[:3] == ["pii", "length", "language"]
    drafts = ["address", "quality", "links", "blocklist", "insult_echo", "persona_leak"]
    assert [n for n in names if n in (*drafts, "commitment")] == [*drafts, "commitment"]


def test_registry_refuses_a_duplicate_name() -> None:
    class AnotherPii(Check):
        name = "pii"
        stages: ClassVar[frozenset[Stage]] = frozenset({"input"})
        flags = ("pii_other",)

        def check(self, text: str) -> tuple[str, ...]:
            return ()

    with pytest.raises(ValueError, match="already registered"):
        register_check(AnotherPii)
    assert registered_checks()["pii"] is not AnotherPii


def test_every_flag_is_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    flags = [TOXIC, *(f for cls in registered_checks().values() for f in cls.flags)]
    for flag in flags:
        assert f"`{flag}`" in doc, f"{flag} is missing from {DOC.name}"


def test_length_caps_drafts_only() -> None:
    check = LengthCheck(Limits(max_reply_chars=10))
    assert check.check("x" * 10) == ()
    assert check.check("x" * 11) == ("too_long",)
    assert check.check("  \n") == ("empty",)
    assert LengthCheck.stages == frozenset({"draft"})


@pytest.mark.parametrize(
    "text",
    [
        "donde esta mi pedido por favor",
        "bonjour, je ne trouve pas ma commande",
        "Hallo, wo ist meine Bestellung? Danke",
        "Где мой заказ?",
        "我的订单在哪里",
    ],
)
def test_other_languages_are_flagged(text: str) -> None:
    assert LanguageCheck(Limits()).check(text) == ("non_english",)


@pytest.mark.parametrize(
    "text",
    [
        "where is my order",
        "hola!",
        "merci beaucoup",
        "😍😍😍",
        "",
        "the café in the mall is très chic lol",
        "Die. Worst brand ever",
        "ok 👍",
    ],
)
def test_english_and_short_texts_are_not_flagged(text: str) -> None:
    assert not looks_non_english(text)
