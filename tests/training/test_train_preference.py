"""Preference tuning: DPO from the active reply adapter on tiny data, registered with its
parent; too few pairs, no adapter to start from and prompts are checked first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import InputError
from bot.nlp.models import ModelHost
from bot.storage.db import Database
from tests.training.reply_data import make_db, make_settings, write_preferences, write_sft
from training import registry
from training.loop import LoopConfig
from training.render import prompt_text, render_prompt, renderer_for
from training.rows import read_preferences
from training.train_reply import ReplyTrainConfig, train_reply

pytest.importorskip("trl", reason="the training extra: pip install -e '.[train]'")

from training.train_preference import (
    PreferenceConfig,
    preference_rows,
    train_preference,
)

# peft calls a transformers API deprecated in 5.x; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


@pytest.fixture
def db(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Database]:
    database = make_db(make_settings(tmp_path, tiny_model_dir))
    yield database
    database.dispose()


def _active_reply_adapter(tmp_path: Path, tiny_model_dir: Path, db: Database) -> str:
    settings = make_settings(tmp_path, tiny_model_dir)
    config = ReplyTrainConfig(LoopConfig(epochs=1, lr=5e-3, batch_size=8))
    trained = train_reply(
        settings,
        "default",
        db=db,
        data=write_sft(tmp_path / "sft.jsonl"),
        config=config,
        progress=False,
    )
    assert trained.adapter is not None
    return registry.promote(db, trained.adapter.name, registry.operator()).name


def test_dpo_starts_from_the_active_adapter_and_registers_a_child(
    tmp_path: Path, tiny_model_dir: Path, db: Database
) -> None:
    parent = _active_reply_adapter(tmp_path, tiny_model_dir, db)
    settings = make_settings(tmp_path, tiny_model_dir)
    result = train_preference(
        settings,
        "default",
        db=db,
        data=write_preferences(tmp_path / "prefs.jsonl", 8),
        config=PreferenceConfig(lr=1e-3, batch_size=4, max_steps=2),
        progress=False,
    )
    assert result.adapter is not None and result.parent == parent
    child = registry.get(db, result.adapter.name)
    assert child.name == "default-reply-v2" and child.parent == parent
    assert child.status == "candidate" and child.config["method"] == "dpo"
    assert child.metrics["pairs"] == 8 and child.metrics["dpo_loss"] is not None
    # Only the tuned adapter is saved (not TRL's frozen reference copy), and it serves.
    assert not (result.out_dir / "ref").exists() and not (result.out_dir / ".dpo").exists()
    host = ModelHost.load(str(tiny_model_dir), device="cpu")
    host.load_adapter("tuned", str(result.out_dir))
    active = registry.active(db, "default", "reply")
    assert active is not None and active.name == parent  # a candidate until promoted


def test_too_few_pairs_or_no_adapter_are_refused(
    tmp_path: Path, tiny_model_dir: Path, db: Database
) -> None:
    settings = make_settings(tmp_path, tiny_model_dir)
    few = write_preferences(tmp_path / "few.jsonl", 3)
    with pytest.raises(InputError, match="no active reply adapter to start from"):
        train_preference(settings, "default", db=db, data=few, progress=False)
    _active_reply_adapter(tmp_path, tiny_model_dir, db)
    with pytest.raises(InputError, match=r"only 3 preference pair\(s\).*at least 8"):
        train_preference(settings, "default", db=db, data=few, progress=False)
    assert len(registry.versions(db, "default", "reply")) == 1


def test_dpo_prompts_are_the_generation_prompts(tiny_host: ModelHost, tmp_path: Path) -> None:
    pairs = read_preferences(write_preferences(tmp_path / "prefs.jsonl", 2))
    settings = make_settings(tmp_path, Path("unused"))
    from bot.accounts import load_accounts

    style = load_accounts(settings).default.style
    renderer = renderer_for(tiny_host.tokenizer, tiny_host.model.config, style, 4)
    rows = preference_rows(renderer, pairs)
    tokenizer = tiny_host.tokenizer
    for row, pair in zip(rows, pairs, strict=True):
        ids = render_prompt(renderer, pair.history, pair.text).input_ids
        assert row["prompt"] == prompt_text(renderer, pair.history, pair.text)
        # What TRL does with the text: tokenize it (specials added) and split at the prompt.
        assert tokenizer(text=row["prompt"])["input_ids"] == list(ids)
        full = tokenizer(text=row["prompt"] + row["chosen"])["input_ids"]
        assert full[: len(ids)] == list(ids)
        assert row["chosen"] == f" {pair.chosen}\n" and row["rejected"] == " no\n"
