"""Classifier heads: data checks and split, pooling, training, calibration, registering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bot.config import DEFAULT_INTENTS, Settings
from bot.errors import InputError
from bot.nlp.head_backbone import encode, last_token_index, load_classification_model, pooled_logits
from bot.storage import accounts as account_store
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema
from training import registry
from training.calibration import (
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    nll,
)
from training.classifier_data import (
    Example,
    class_weights,
    data_hash,
    label_set,
    read_examples,
    stratified_split,
)
from training.train_classifier import HeadConfig, train_classifier, train_head

# Separable by the last word (the pooled token): thanks-lines are "a", order-lines are "b".
_A = ["Thanks so much", "Great service, thanks", "Have a nice day, thanks", "You are welcome"]
_B = ["Where is my order", "Can I return my order", "I forgot my order", "Do you ship my order"]


def toy(n: int = 24) -> list[Example]:
    rows = [Example(f"{_A[i % 4]} {i}. thanks", "a") for i in range(n)]
    rows += [Example(f"{_B[i % 4]} {i}. order", "b") for i in range(n)]
    return rows


# --- data -----------------------------------------------------------------------------------


def test_read_examples_skips_blank_texts_and_names_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"text": "hi", "label": "Greeting", "source": "x"}\n\n{"text": " ", "label": "other"}\n',
        encoding="utf-8",
    )
    assert read_examples(path) == [Example("hi", "greeting")]
    path.write_text('{"text": "hi"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"d\.jsonl:1 .*\"label\""):
        read_examples(path)


def test_labels_per_task() -> None:
    rows = [Example("x", "question"), Example("y", "other")]
    assert label_set("intent", rows, DEFAULT_INTENTS) == DEFAULT_INTENTS
    with pytest.raises(InputError, match=r"'refund' is not a valid intent label.*question"):
        label_set("intent", [*rows, Example("z", "refund")], DEFAULT_INTENTS, "account acme")
    sentiment = [Example("x", "negative"), Example("y", "positive")]
    assert label_set("sentiment", sentiment, ()) == ("negative", "neutral", "positive")
    with pytest.raises(InputError, match="'angry' is not a valid sentiment label"):
        label_set("sentiment", [Example("z", "angry")], ())
    safety = [Example("x", "neither"), Example("y", "hate"), Example("z", "hate")]
    assert label_set("safety", safety, ()) == ("hate", "neither")
    with pytest.raises(InputError, match="at least two"):
        label_set("safety", safety[1:], ())


def test_split_is_stratified_seeded_and_hash_follows_the_rows() -> None:
    rows = [Example(f"a{i}", "a") for i in range(20)] + [Example(f"b{i}", "b") for i in range(4)]
    train, val = stratified_split(rows, 0.25, seed=1)
    assert sorted(e.label for e in val) == ["a"] * 5 + ["b"]
    assert len(train) + len(val) == len(rows) and not set(train) & set(val)
    assert stratified_split(rows, 0.25, seed=1) == (train, val)
    assert data_hash(train) == data_hash(list(train)) != data_hash(val)
    # 15 "a" and 3 "b" left to train on: inverse frequency, mean 1 over the labels present
    assert class_weights(train, ["a", "b", "c"]) == pytest.approx([1 / 3, 5 / 3, 0.0])
    # a label seen once weighs at most `cap` times the most frequent one
    assert class_weights(train, ["a", "b", "c"], cap=2.0) == pytest.approx([2 / 3, 4 / 3, 0.0])


# --- pooling ----------------------------------------------------------------------------------


def test_pooling_takes_the_last_real_token_of_right_padded_rows(tiny_model_dir: Path) -> None:
    model, tokenizer = load_classification_model(str(tiny_model_dir), num_labels=3, device="cpu")
    texts = ["Where is my order? It has been a week.", "hi", "Thanks for the quick answer"]
    batch = encode(tokenizer, texts, max_length=64)
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    assert tokenizer.padding_side == "right" and model.config.pad_token_id is not None
    assert batch["attention_mask"][1].tolist() == [1] * lengths[1] + [0] * (
        max(lengths) - lengths[1]
    )
    assert last_token_index(batch["attention_mask"]).tolist() == [n - 1 for n in lengths]
    with torch.no_grad():
        together = pooled_logits(model, batch["input_ids"], batch["attention_mask"])
        for row, text in enumerate(texts):
            alone = encode(tokenizer, [text], max_length=64)
            single = pooled_logits(model, alone["input_ids"], alone["attention_mask"])
            assert torch.allclose(together[row], single[0], atol=1e-5)
            # transformers' own pooling agrees on an unpadded row
            assert torch.allclose(model(input_ids=alone["input_ids"]).logits, single, atol=1e-5)


# --- calibration ------------------------------------------------------------------------------


def test_temperature_fit_lowers_the_nll_of_overconfident_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    gold = torch.randint(0, 3, (300,), generator=generator)
    noisy = torch.randn(300, 3, generator=generator) + 1.5 * torch.nn.functional.one_hot(gold, 3)
    logits = 6.0 * noisy  # right often, far too sure
    t = fit_temperature(logits, gold)
    assert t > 2.0
    assert nll(logits, gold, t) < nll(logits, gold)
    before = expected_calibration_error(torch.softmax(logits, 1), gold)
    after = expected_calibration_error(torch.softmax(logits / t, 1), gold)
    assert after < before


def test_metrics_and_ece_by_hand() -> None:
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b", "c"])
    assert m["accuracy"] == 0.75 and m["recall"] == {"a": 1.0, "b": 2 / 3}
    assert m["macro_recall"] == pytest.approx(5 / 6)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    sure = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert expected_calibration_error(sure, torch.tensor([0, 1])) == pytest.approx(0.5)


# --- training ---------------------------------------------------------------------------------


FAST = HeadConfig(
    task="safety", epochs=6, lr=3e-3, batch_size=8, evals_per_epoch=1, patience=100, seed=0
)


def test_training_lowers_the_loss_and_beats_chance(tiny_model_dir: Path) -> None:
    train, val = stratified_split(toy(), 0.25, seed=0)
    head = train_head(
        str(tiny_model_dir), train, val, ("a", "b"), FAST, device="cpu", progress=False
    )
    m = head.metrics
    assert m["val_loss"] < m["val_loss_initial"]
    assert m["train_loss_last"] < m["train_loss_first"]
    assert m["accuracy"] >= 0.8 and m["macro_recall"] >= 0.8  # chance is 0.5
    assert m["val_nll_calibrated"] <= m["val_nll"] + 1e-6
    assert head.temperature == m["temperature"] > 0


def test_train_classifier_registers_a_calibrated_candidate(
    tiny_model_dir: Path, sqlite_url: str, tmp_path: Path
) -> None:
    ensure_schema(sqlite_url)
    db = Database(sqlite_url)
    with db.session() as s:
        account_store.bind(s, "default", "console", "default")
    data = tmp_path / "labels.jsonl"
    data.write_text("".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in toy()))
    settings = Settings(
        model=str(tiny_model_dir),
        database_url=sqlite_url,
        adapters_dir=tmp_path / "adapters",
        device="cpu",
    )
    result = train_classifier(settings, FAST, data=data, progress=False)

    assert result.version is not None and result.version.name == "default-safety-v1"
    stored = registry.get(db, "default-safety-v1")
    assert stored.status == "candidate" and stored.kind == "safety"
    assert stored.base_model == str(tiny_model_dir) and stored.data_hash
    for key in ("accuracy", "macro_f1", "macro_recall", "recall", "val_loss", "ece"):
        assert key in stored.metrics
    assert stored.config["temperature"] == stored.metrics["temperature"]
    path = result.path
    assert json.loads((path / "labels.json").read_text()) == {"0": "a", "1": "b"}
    head = json.loads((path / "head.json").read_text())
    assert head["task"] == "safety" and head["max_length"] == 64
    assert (path / "adapter_config.json").is_file()
    db.dispose()


def test_an_unknown_account_fails_before_training(sqlite_url: str, tmp_path: Path) -> None:
    ensure_schema(sqlite_url)
    settings = Settings(database_url=sqlite_url, adapters_dir=tmp_path, device="cpu")
    with pytest.raises(registry.RegistryError, match="no account named 'default'"):
        train_classifier(settings, FAST, data=tmp_path / "unused.jsonl", progress=False)


def test_lora_layers_adapts_only_the_last_blocks(tiny_model_dir: Path) -> None:
    from training.train_classifier import build_model

    model, _ = build_model(str(tiny_model_dir), ("a", "b"), HeadConfig(task="x", lora_layers=1))
    adapted = {n.split(".h.")[1].split(".")[0] for n, _ in model.named_parameters() if "lora_" in n}
    assert adapted == {"1"}  # the tiny GPT-2 has blocks 0 and 1
    everything, _ = build_model(
        str(tiny_model_dir), ("a", "b"), HeadConfig(task="x", lora_layers=0)
    )
    assert sum("lora_A" in n for n, _ in everything.named_parameters()) == 2 * sum(
        "lora_A" in n for n, _ in model.named_parameters()
    )
