from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_INTENTS, load_settings
from bot.domain import Mode
from bot.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AUTOREPLY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_match_the_documented_table() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///./autoreply.db"
    assert s.model == "gpt2"
    assert s.mode is Mode.REVIEW_ALL
    assert s.max_new_tokens == 48
    assert s.history_turns == 6
    assert s.prompt_format == "auto"
    assert s.persona
    assert s.intent_labels == DEFAULT_INTENTS


def test_env_overrides_and_comma_separated_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOREPLY_MODE", "auto")
    monkeypatch.setenv("AUTOREPLY_MAX_NEW_TOKENS", "20")
    monkeypatch.setenv("AUTOREPLY_INTENT_LABELS", "question, complaint ,Other")
    monkeypatch.setenv("AUTOREPLY_DATABASE_URL", "postgresql+psycopg://u@h:5432/db")
    s = load_settings()
    assert s.mode is Mode.AUTO and s.max_new_tokens == 20
    assert s.intent_labels == ("question", "complaint", "other")
    assert s.database_url.startswith("postgresql+psycopg://")


def test_toml_file_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "autoreply.toml").write_text(
        'model = "/models/dialogpt"\nprompt_format = "dialogpt"\nhistory_turns = 3\n'
        'intent_labels = ["praise", "other"]\n'
    )
    monkeypatch.setenv("AUTOREPLY_HISTORY_TURNS", "4")
    s = load_settings()
    assert s.model == "/models/dialogpt" and s.prompt_format == "dialogpt"
    assert s.history_turns == 4
    assert s.intent_labels == ("praise", "other")


def test_config_variable_names_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "prod.toml"
    other.write_text('mode = "off"\n')
    monkeypatch.setenv("AUTOREPLY_CONFIG", str(other))
    assert load_settings().mode is Mode.OFF
    monkeypatch.setenv("AUTOREPLY_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("AUTOREPLY_MODE", "sometimes", "mode"),
        ("AUTOREPLY_INTENT_LABELS", "question,praise", "other"),
        ("AUTOREPLY_MAX_NEW_TOKENS", "0", "max_new_tokens"),
    ],
)
def test_invalid_values_say_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, hint: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=hint):
        load_settings()
