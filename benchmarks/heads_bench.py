"""Classifier heads' throughput: lines per second per head on a 135M backbone, load excluded.

By default the backbone is a Llama-style model of SmolLM2-135M's shape (hidden 576, 30
layers, 9 heads, 3 KV heads, MLP 1,536, 49,152 tokens) with seeded random weights, so no
weights are needed; `--model` may name the real checkpoint (.gguf, directory or hub id).
Heads are made with the training code (`build_model` + `save_head`, untrained: the compute
is the same) and served through `load_account_classifier`, the service's path. fp32, batched,
`torch.inference_mode()`. Run: `python -m benchmarks.heads_bench` or `autoreply bench heads`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from benchmarks.classify_bench import make_lines
from benchmarks.tiny_model import _train_tokenizer

RANDOM_SMOLLM_DIR = Path(__file__).resolve().parents[1] / ".bench" / "random-smollm2-135m"
INTENTS = ("question", "complaint", "praise", "request", "greeting", "spam", "abuse", "other")
SENTIMENTS = ("negative", "neutral", "positive")


def random_smollm_dir(path: Path = RANDOM_SMOLLM_DIR) -> Path:
    """SmolLM2-135M's shape with seeded random weights (~540 MB, saved once, git-ignored) and
    the tiny test BPE tokenizer (its ids are a subset of the model's)."""
    if (path / "config.json").is_file():
        return path
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    return path


def _make_head(base: str, task: str, labels: tuple[str, ...], out: Path) -> Path:
    from training.train_classifier import HeadConfig, TrainedHead, build_model, save_head

    config = HeadConfig(task=task)
    model, tokenizer = build_model(base, labels, config, device="cpu")
    return save_head(
        TrainedHead(model, tokenizer, labels, 1.0), out, base_model=base, config=config
    )


def run(
    model: str | None = None, lines: int = 128, batch_size: int = 16, repeats: int = 2
) -> dict[str, Any]:
    """Time each head alone and the account classifier with one and two heads."""
    from bot.config import Settings
    from bot.nlp.classify import LexicalClassifier
    from bot.nlp.head_backbone import encode, shared_backbone
    from bot.nlp.heads import HeadClassifier, load_heads

    base = model or str(random_smollm_dir())
    texts = make_lines(lines)
    settings = Settings(device="cpu")
    results: dict[str, Any] = {"model": base, "lines": lines, "batch_size": batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        heads = {
            "intent": (
                "bench-intent-v1",
                str(_make_head(base, "intent", INTENTS, Path(tmp) / "i")),
            ),
            "sentiment": (
                "bench-sentiment-v1",
                str(_make_head(base, "sentiment", SENTIMENTS, Path(tmp) / "s")),
            ),
        }
        started = time.perf_counter()
        loaded = load_heads(settings, heads, INTENTS)
        results["load_s"] = round(time.perf_counter() - started, 2)
        backbone = shared_backbone(base, "cpu")
        tokens = encode(backbone.tokenizer, texts, 64)["attention_mask"].sum(1).float()
        results["tokens_per_line"] = round(float(tokens.mean()), 1)
        results["threads"] = torch.get_num_threads()
        rules = LexicalClassifier(INTENTS)
        one = HeadClassifier({"sentiment": loaded["sentiment"]}, rules, batch_size=batch_size)
        two = HeadClassifier(loaded, rules, batch_size=batch_size)
        # name -> (call, heads it runs)
        cases: dict[str, tuple[Callable[[], object], int]] = {
            "sentiment head alone": (
                lambda: loaded["sentiment"].probabilities(texts, batch_size),
                1,
            ),
            "classifier: sentiment head + rules": (lambda: one.classify_many(texts), 1),
            "classifier: intent + sentiment heads": (lambda: two.classify_many(texts), 2),
        }
        for name, (call, heads_run) in cases.items():
            walls = []
            for _ in range(repeats):
                started = time.perf_counter()
                call()
                walls.append(time.perf_counter() - started)
            median = statistics.median(walls)
            results[name] = {
                "median_s": round(median, 2),
                "lines_per_s": round(lines / median, 1),
                "per_head_lines_per_s": round(lines * heads_run / median, 1),
            }
    results["load_average"] = round(os.getloadavg()[0], 2)
    return results


def format_table(results: dict[str, Any]) -> str:
    rows = [
        f"backbone {results['model']}: loaded with two heads in {results['load_s']} s; "
        f"{results['lines']} lines, {results['tokens_per_line']} tokens/line, batches of "
        f"{results['batch_size']}, {results['threads']} threads, load average "
        f"{results['load_average']}",
        f"{'case':<40} {'median s':>9} {'lines/s':>9} {'per head':>9}",
    ]
    for name, value in results.items():
        if isinstance(value, dict):
            rows.append(
                f"{name:<40} {value['median_s']:>9.2f} {value['lines_per_s']:>9.1f} "
                f"{value['per_head_lines_per_s']:>9.1f}"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="backbone (.gguf, directory or hub id)")
    parser.add_argument("--lines", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    print(format_table(run(args.model, args.lines, args.batch_size)))


if __name__ == "__main__":
    main()
