"""The eval gate: its decisions, the held-out split, and refusing broken or useless adapters on
a real tiny model."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from bot.accounts import load_accounts
from tests.fixtures.models import make_lora
from tests.training.reply_data import make_db, make_settings, write_sft
from training import registry
from training.evaluate import (
    ClassifierMetrics,
    ReplyMetrics,
    allowed_safety_labels,
    classifier_metrics,
    decide_classifier,
    decide_reply,
    evaluate,
    is_heldout,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _reply(ppl: float, fallback: float = 0.1, blocked: float = 0.0) -> ReplyMetrics:
    return ReplyMetrics(ppl, fallback, blocked, heldout=5, probes=32)


def test_reply_decisions_need_the_margin_and_no_more_blocks_or_fallbacks() -> None:
    base = _reply(20.0)
    assert decide_reply(_reply(15.0), base, 0.02)[0]
    assert not decide_reply(_reply(19.9), base, 0.02)[0]  # better, but not by 2 %
    ok, why = decide_reply(_reply(10.0, blocked=0.05), base, 0.02)
    assert not ok and "blocks more" in why
    ok, why = decide_reply(_reply(10.0, fallback=0.3), base, 0.02)
    assert not ok and "falls back" in why
    ok, why = decide_reply(_reply(math.nan), base, 0.02)
    assert not ok and "broken" in why


def test_classifier_decisions_and_metrics() -> None:
    metrics = classifier_metrics(["a", "a", "b", "b"], ["a", "a", "b", "a"])
    assert metrics.accuracy == 0.75 and metrics.per_class_recall == {"a": 1.0, "b": 0.5}
    base = ClassifierMetrics(0.5, 0.5, 0.6, 10)
    assert decide_classifier(ClassifierMetrics(0.6, 0.6, 0.7, 10), base, 0.02)[0]
    assert not decide_classifier(ClassifierMetrics(0.505, 0.6, 0.7, 10), base, 0.02)[0]
    assert not decide_classifier(ClassifierMetrics(math.nan, 0.6, 0.7, 10), base, 0.02)[0]


def test_a_safety_head_that_flags_neutral_texts_is_refused_despite_its_macro_f1() -> None:
    truth = ["neither"] * 8 + ["hate"] * 2
    allowed = allowed_safety_labels({"neither": "allow", "hate": "block", "offensive": "review"})
    assert allowed == {"neither"}
    baseline = classifier_metrics(truth, ["neither"] * 10, allowed)
    assert baseline.false_positive_rate == 0.0
    # Catches both hateful texts but flags 2 of the 8 neutral ones: 25% false positives.
    eager = classifier_metrics(truth, ["neither"] * 6 + ["hate"] * 4, allowed)
    assert eager.false_positive_rate == 0.25 and eager.macro_f1 > baseline.macro_f1
    ok, why = decide_classifier(eager, baseline, 0.02, max_false_positive_rate=0.05)
    assert not ok and "25.0% of the held-out texts that should pass" in why
    # One neutral text in eight (12.5%) passes a 15% limit, and macro-F1 decides.
    careful = classifier_metrics(truth, ["neither"] * 7 + ["hate"] * 3, allowed)
    assert careful.false_positive_rate == 0.125
    assert decide_classifier(careful, baseline, 0.02, max_false_positive_rate=0.15)[0]
    # Intent and sentiment heads have no false-positive rate and are judged as before.
    assert classifier_metrics(truth, truth).false_positive_rate is None


def test_the_held_out_split_is_stable_and_about_a_tenth() -> None:
    keys = [f"conversation {i}" for i in range(2000)]
    held = [k for k in keys if is_heldout(k)]
    assert 150 < len(held) < 250
    assert held == [k for k in keys if is_heldout(k)]  # the same on every call and export


def _candidate(settings_dir: Path, db: object, weights: Path) -> str:
    slot = registry.reserve(db, settings_dir / "adapters", "default", "reply")  # type: ignore[arg-type]
    shutil.copytree(weights, slot.path, dirs_exist_ok=True)
    return registry.register(
        db,  # type: ignore[arg-type]
        slot,
        base_model="tiny",
        data_hash=None,
        config={},
        metrics={},
    ).name


def test_the_gate_refuses_a_corrupted_adapter_and_one_that_does_not_help(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, tiny_model_dir, do_sample=False)
    db = make_db(settings)
    accounts = load_accounts(settings)
    data = write_sft(tmp_path / "sft.jsonl", conversations=60)

    corrupted = make_lora(tiny_model_dir, tmp_path / "corrupted", seed=1)
    weights = load_file(corrupted / "adapter_model.safetensors")
    save_file(
        {k: torch.full_like(v, math.nan) for k, v in weights.items()},
        str(corrupted / "adapter_model.safetensors"),
    )
    broken = _candidate(tmp_path, db, corrupted)
    noise = _candidate(tmp_path, db, make_lora(tiny_model_dir, tmp_path / "noise", seed=2))

    verdict = evaluate(db, settings, accounts, broken, data=data, promote=True)
    assert not verdict.promote and "broken" in verdict.reason
    assert registry.get(db, broken).status == "rejected"

    verdict = evaluate(db, settings, accounts, noise, data=data, promote=True)
    # Random LoRA noise: no better held-out perplexity (and on this model more fallbacks).
    assert not verdict.promote and verdict.reason.startswith(("held-out", "it falls")), (
        verdict.table()
    )
    stored = registry.get(db, noise).metrics
    assert stored["eval"]["baseline"] == "base model" and stored["eval"]["promote"] is False
    assert registry.active(db, "default", "reply") is None  # nothing was promoted
    assert "KEEP" in verdict.table()
