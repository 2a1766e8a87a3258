"""Accounts from autoreply.toml ([[accounts]]) or the flat AUTOREPLY_* variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.accounts import load_accounts
from bot.config import DEFAULT_INTENTS, load_settings
from bot.domain import Mode
from bot.errors import ConfigError

TWO_BOTS = """
model = "/models/tiny"
prompt_format = "dialogpt"

[[accounts]]
name = "shop"
platform = "telegram"
mode = "auto"
persona = "You sell shoes."
disclosure = "AI-written reply"
user_cooldown_s = 2

[accounts.telegram]
token_env = "SHOP_TOKEN"
base_url = "http://127.0.0.1:9001/bot"
moderator_chat_id = -100111
moderator_ids = [11, 12]

[[accounts]]
name = "bank"
platform = "telegram"
default = true
prompt_format = "plain"
intent_labels = ["question", "other"]
adapter = "/adapters/bank-v2"

[accounts.telegram]
token_env = "BANK_TOKEN"
moderator_chat_id = -100222
moderator_ids = "21"
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("AUTOREPLY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOP_TOKEN", "111:shop-secret")
    monkeypatch.setenv("BANK_TOKEN", "222:bank-secret")


def _write(tmp_path: Path, text: str) -> None:
    (tmp_path / "autoreply.toml").write_text(text)


def test_two_telegram_accounts_resolve_with_their_own_settings(tmp_path: Path) -> None:
    _write(tmp_path, TWO_BOTS)
    accounts = load_accounts(load_settings())
    shop, bank = accounts.all
    assert accounts.names == ("shop", "bank")
    assert accounts.default is bank and accounts.get(None) is bank
    assert (shop.handle, bank.handle) == ("111", "222")  # the bot ids, from the tokens
    assert shop.mode is Mode.AUTO and bank.mode is Mode.REVIEW_ALL
    assert shop.style.persona == "You sell shoes." and bank.style.persona != shop.style.persona
    # The process-wide prompt format is a default; an account may override it.
    assert (shop.style.prompt_format, bank.style.prompt_format) == ("dialogpt", "plain")
    assert shop.intent_labels == DEFAULT_INTENTS and bank.intent_labels == ("question", "other")
    assert (shop.review_chat_id, bank.review_chat_id) == ("-100111", "-100222")
    assert shop.moderator_ids == {11, 12} and bank.moderator_ids == {21}
    assert (shop.disclosure, bank.disclosure) == ("AI-written reply", None)
    assert (shop.user_cooldown_s, bank.user_cooldown_s) == (2.0, 5.0)
    assert (shop.adapter, bank.adapter) == (None, "/adapters/bank-v2")
    assert shop.telegram is not None and shop.telegram.base_url == "http://127.0.0.1:9001/bot"
    # The tokens come from the environment and are redacted from logs.
    assert set(accounts.secrets) == {"111:shop-secret", "222:bank-secret"}


def test_without_a_default_mark_the_first_account_is_the_default(tmp_path: Path) -> None:
    _write(tmp_path, TWO_BOTS.replace("default = true\n", ""))
    assert load_accounts(load_settings()).default.name == "shop"


def test_flat_variables_describe_the_default_account_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = load_accounts(load_settings()).all
    assert [(a.name, a.platform, a.handle) for a in console] == [("default", "console", "default")]
    assert console[0].user_cooldown_s == 0.0  # the console never had a cooldown

    monkeypatch.setenv("AUTOREPLY_TELEGRAM_TOKEN", "333:flat")
    monkeypatch.setenv("AUTOREPLY_TELEGRAM_MODERATOR_IDS", "7,8")
    monkeypatch.setenv("AUTOREPLY_MODE", "auto")
    (flat,) = load_accounts(load_settings()).all
    assert (flat.name, flat.platform, flat.handle, flat.mode) == (
        "default",
        "telegram",
        "333",
        Mode.AUTO,
    )
    assert flat.moderator_ids == {7, 8} and flat.user_cooldown_s == 5.0
    # `autoreply chat` as this account keeps its own console history.
    view = flat.console()
    assert (view.name, view.platform, view.handle, view.mode) == (
        "console-default",
        "console",
        "default",
        Mode.AUTO,
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t.replace('name = "bank"', 'name = "shop"'), r"account 'shop': name: two"),
        (
            lambda t: t.replace('platform = "telegram"\ndefault', 'platform = "mastodon"\ndefault'),
            r"account 'bank': platform: unknown platform 'mastodon'",
        ),
        (
            lambda t: t.replace('token_env = "BANK_TOKEN"', 'token_env = "NOPE_TOKEN"'),
            r"account 'bank': telegram.token_env: .*NOPE_TOKEN is not set",
        ),
        (
            lambda t: t.replace('mode = "auto"', 'mode = "auto"\ncolour = "red"'),
            r"account 'shop': colour: unknown key",
        ),
        (
            lambda t: t.replace(
                "moderator_chat_id = -100222", "moderator_chat_id = -100222\nfoo = 1"
            ),
            r"account 'bank': telegram.foo: unknown key",
        ),
        (
            lambda t: t.replace('mode = "auto"', 'mode = "sometimes"'),
            r"account 'shop': mode: ",
        ),
        (
            lambda t: t.replace(
                'base_url = "http://127.0.0.1:9001/bot"',
                'webhook_url = "https://a.example/tg"\nwebhook_secret_env = "SHOP_TOKEN_S"',
            ).replace(
                'token_env = "BANK_TOKEN"',
                'token_env = "BANK_TOKEN"\nwebhook_url = "https://b.example/tg"\n'
                'webhook_secret_env = "SHOP_TOKEN_S"',
            ),
            r"account 'bank': telegram.webhook_port: account 'shop' already listens on "
            r"127.0.0.1:8443",
        ),
        (
            lambda t: t.replace('platform = "telegram"\ndefault', 'platform = "console"\ndefault'),
            r"account 'bank': telegram: this account's platform is 'console'",
        ),
        (
            lambda t: t.replace("default = true", "default = true\n[accounts.telegram]"),
            r"is not valid TOML",
        ),
        (
            lambda t: t.replace('token_env = "BANK_TOKEN"', 'token_env = "SHOP_TOKEN"'),
            r"account 'bank': telegram.token_env: the same bot as account 'shop'",
        ),
    ],
)
def test_bad_config_stops_with_one_line_naming_account_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: object, expected: str
) -> None:
    monkeypatch.setenv("SHOP_TOKEN_S", "s3cret")
    _write(tmp_path, change(TWO_BOTS))  # type: ignore[operator]
    with pytest.raises(ConfigError, match=expected) as raised:
        load_accounts(load_settings())
    assert "\n" not in str(raised.value)


def test_per_account_variables_beside_accounts_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, TWO_BOTS)
    monkeypatch.setenv("AUTOREPLY_TELEGRAM_TOKEN", "999:stray")
    with pytest.raises(ConfigError, match=r"\(AUTOREPLY_TELEGRAM_TOKEN\) describes one account"):
        load_accounts(load_settings())
    monkeypatch.delenv("AUTOREPLY_TELEGRAM_TOKEN")
    monkeypatch.setenv("AUTOREPLY_PERSONA", "stray")
    with pytest.raises(ConfigError, match=r"AUTOREPLY_PERSONA"):
        load_accounts(load_settings())
    # Process-wide variables stay valid beside [[accounts]] and act as defaults.
    monkeypatch.delenv("AUTOREPLY_PERSONA")
    monkeypatch.setenv("AUTOREPLY_MAX_NEW_TOKENS", "20")
    monkeypatch.setenv("AUTOREPLY_BOT_NAME", "Helper")
    shop, bank = load_accounts(load_settings()).all
    assert shop.style.max_new_tokens == bank.style.max_new_tokens == 20
    assert shop.style.bot_name == "Helper"


def test_flat_keys_in_the_file_and_flat_webhooks_are_named_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, 'mode = "auto"\n' + TWO_BOTS)
    with pytest.raises(ConfigError, match=r"^mode \(AUTOREPLY_MODE\) describes one account"):
        load_accounts(load_settings())
    _write(tmp_path, TWO_BOTS)
    monkeypatch.setenv("AUTOREPLY_TELEGRAM_WEBHOOK_URL", "https://x.example/tg")
    with pytest.raises(ConfigError, match=r"telegram_webhook_url .* describes one account"):
        load_accounts(load_settings())


def test_a_token_without_a_bot_id_is_refused_before_it_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, TWO_BOTS)
    monkeypatch.setenv("SHOP_TOKEN", "only-the-secret-part")
    with pytest.raises(ConfigError, match=r"account 'shop': telegram.token_env: this is not a"):
        load_accounts(load_settings())
    monkeypatch.setenv("SHOP_TOKEN", "111:shop-secret")
    _write(tmp_path, "")
    monkeypatch.setenv("AUTOREPLY_TELEGRAM_TOKEN", "secret-without-id")
    with pytest.raises(ConfigError, match=r"AUTOREPLY_TELEGRAM_TOKEN: this is not a bot token"):
        load_accounts(load_settings())


def test_unknown_account_name_lists_the_configured_ones(tmp_path: Path) -> None:
    _write(tmp_path, TWO_BOTS)
    with pytest.raises(ConfigError, match=r"no account named 'shoe'; configured: shop, bank"):
        load_accounts(load_settings()).get("shoe")
