"""`[accounts.safety]`: per-account thresholds and lists, resolved into `Account.safety`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.accounts import load_accounts
from bot.config import load_settings
from bot.errors import ConfigError
from bot.safety.context import SafetyRules

SHOP = """
[[accounts]]
name = "shop"
platform = "console"
persona = "You are the support account of Shop."

[accounts.safety]
toxicity_review = 0.3
toxicity_block = 0.7
own_handle = "@Shop_Help"
allowed_domains = ["https://www.shopco.com/help", "status.shopco.net"]
allowed_handles = ["@shop_returns", "shop_billing"]
blocklist = ["competitor corp", "cheap"]
commitment_phrases = "price match"
approved_phrases = ["free returns within 30 days"]

[[accounts]]
name = "bank"
platform = "console"
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("AUTOREPLY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def _load(tmp_path: Path, text: str) -> dict[str, SafetyRules]:
    (tmp_path / "autoreply.toml").write_text(text)
    return {a.name: a.safety for a in load_accounts(load_settings())}


def test_the_table_resolves_into_plain_rules(tmp_path: Path) -> None:
    rules = _load(tmp_path, SHOP)
    assert rules["shop"] == SafetyRules(
        toxicity_review=0.3,
        toxicity_block=0.7,
        own_handle="Shop_Help",
        allowed_domains=("shopco.com", "status.shopco.net"),
        allowed_handles=("shop_returns", "shop_billing"),
        blocklist=("competitor corp", "cheap"),
        commitment_phrases=("price match",),
        approved_phrases=("free returns within 30 days",),
    )
    assert rules["bank"] == SafetyRules()  # no table: process-wide thresholds, empty lists


def test_the_context_carries_persona_and_rules(tmp_path: Path) -> None:
    (tmp_path / "autoreply.toml").write_text(SHOP)
    shop = load_accounts(load_settings()).get("shop")
    context = shop.check_context("where is my parcel?")
    assert context.persona == "You are the support account of Shop."
    assert context.user_text == "where is my parcel?"
    assert context.rules is shop.safety
    assert shop.console().check_context().rules is shop.safety  # `autoreply chat` judges alike


def test_flat_settings_give_the_default_account_empty_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOREPLY_TOXICITY_REVIEW", "0.4")
    account = load_accounts(load_settings()).default
    assert account.safety == SafetyRules()  # the gate applies AUTOREPLY_TOXICITY_* itself


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("blocklist =", "blocklst ="), r"account 'shop': safety\.blocklst: unknown key; check"),
        (
            ("toxicity_block = 0.7", "toxicity_block = 0.2"),
            r"account 'shop': safety: .*toxicity_block \(0\.2\) is below toxicity_review",
        ),
        (("toxicity_review = 0.3", "toxicity_review = 1.5"), r"safety\.toxicity_review: "),
        (
            ('"status.shopco.net"', '"status shopco"'),
            r"safety\.allowed_domains: .*'status shopco' is not a domain; write it like",
        ),
        (
            ('"shop_billing"', '"shop billing!"'),
            r"safety\.allowed_handles: .*is not a handle; write it like @shop_support",
        ),
        (('"cheap"', '"  "'), r"safety\.blocklist: .*an entry is blank"),
        (
            ("toxicity_review = 0.3\ntoxicity_block = 0.7", "toxicity_block = 0.4"),
            r"account 'shop'.*safety\.toxicity_block: 0\.4 is below the toxicity_review in "
            r"force \(0\.5\); set both",
        ),
    ],
)
def test_bad_safety_tables_stop_with_a_line_that_says_what_to_fix(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    assert change[0] in SHOP
    with pytest.raises(ConfigError, match=expected) as raised:
        _load(tmp_path, SHOP.replace(*change))
    assert "\n" not in str(raised.value)
