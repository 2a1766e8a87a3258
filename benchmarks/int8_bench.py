"""fp32 against CPU int8 (`bot.nlp.quantize`): greedy decode speed and perplexity per variant.

`measure_int8` loads the model through `ModelHost.load` like the service does, quantizes copies
with each variant and reports tokens/s of a 48-token greedy batch-1 generate (best of a few
reps, the models taking turns so a busy neighbour slows them alike) and perplexity on a fixed
customer-service passage: Taskmaster-4 coffee-shop chats from ../shared/data, or the tiny
model's corpus where that folder is absent. Calibration uses other conversations than the
passage. Without a model it uses a random GPT-2 124M (speed only: its perplexity is noise).

    python -m benchmarks.int8_bench --model PATH [--quick]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from tqdm import tqdm
from transformers import (
    PreTrainedModel,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from benchmarks.bench_models import random_gpt2_dir
from benchmarks.tiny_model import _CORPUS
from bot.nlp.models import ModelHost
from bot.nlp.quantize import (
    DEFAULT_VARIANT,
    VARIANTS,
    calibration_from_texts,
    perplexity,
    quantize_int8,
)

NEW_TOKENS = 48
CHATS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "coffee-chats" / "conversations.jsonl"
)
DEFAULT_PROMPT = (
    "Customer: Hi! Can I get a large iced latte with oat milk, and do you have anything "
    "without sugar?\nAssistant:"
)


class _Generates(Protocol):
    """`generate` is untyped in transformers; this types the one call made here."""

    def generate(self, *args: Any, **kwargs: Any) -> Any: ...


def _chat_texts() -> Iterator[str]:
    if not CHATS.is_file():
        yield from _CORPUS
        return
    with CHATS.open(encoding="utf-8") as lines:
        for line in lines:
            turns = json.loads(line)["messages"]
            names = {"user": "Customer", "bot": "Assistant"}
            yield "".join(f"{names.get(t['role'], t['role'])}: {t['text']}\n" for t in turns)


def passage_and_calibration(
    tokenizer: PreTrainedTokenizerBase, *, tokens: int, calibration_rows: int
) -> tuple[str, list[torch.Tensor]]:
    """The first chats up to `tokens` tokens; calibration from the last chats (disjoint)."""
    chats = list(_chat_texts())
    passage = ""
    used = 0
    while used < len(chats) and len(tokenizer(passage).input_ids) < tokens:
        passage += chats[used] + "\n"
        used += 1
    ids = tokenizer(passage).input_ids[:tokens]
    rest = chats[used:][::-1]
    per_row = max(1, len(rest) // calibration_rows)
    rows = ["\n".join(rest[i * per_row : (i + 1) * per_row][:40]) for i in range(calibration_rows)]
    return str(tokenizer.decode(ids)), calibration_from_texts(tokenizer, rows)


class _StepClock(StoppingCriteria):
    """Times every decoding step (generate asks it once per new token) and never stops."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> Any:
        self.stamps.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)


def _generate_speed(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]
) -> tuple[float, float]:
    """Tokens/s over whole generate calls, and the median decoding step in ms (a busy
    neighbour stretches some steps; the median step shrugs that off better)."""
    started = time.perf_counter()
    steps: list[float] = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt")
        clock = _StepClock()
        with torch.no_grad():
            cast(_Generates, model).generate(
                **enc,
                do_sample=False,
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,  # both sides generate the same count
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([clock]),
            )
        steps += [b - a for a, b in itertools.pairwise(clock.stamps)]  # after the prefill
    elapsed = time.perf_counter() - started
    return NEW_TOKENS * len(prompts) / elapsed, 1000 * statistics.median(steps)


def measure_int8(
    model_ref: str | None, *, quick: bool, prompts: Sequence[str] | None = None
) -> dict[str, object]:
    """fp32 against every int8 variant of `model_ref` (default: a random GPT-2 124M)."""
    ref = model_ref or str(random_gpt2_dir())
    prompts = list(prompts or [DEFAULT_PROMPT])
    fp32 = ModelHost.load(ref, device="cpu")
    tokenizer = fp32.tokenizer
    base = fp32.model
    if not isinstance(base, PreTrainedModel):  # pragma: no cover - ModelHost.load gives one
        raise TypeError(f"expected a PreTrainedModel, got {type(base).__name__}")
    text, calibration = passage_and_calibration(
        tokenizer, tokens=400 if quick else 1500, calibration_rows=4 if quick else 8
    )
    # The second load is what gets quantized; each variant works on its own copy of it.
    pristine = ModelHost.load(ref, device="cpu").model
    models: dict[str, PreTrainedModel] = {"fp32": base}
    reports: dict[str, dict[str, Any]] = {}
    for variant in tqdm(VARIANTS, desc="quantize", leave=False):
        model = copy.deepcopy(pristine)
        assert isinstance(model, PreTrainedModel)
        report = quantize_int8(model, calibration=calibration, variant=variant)
        models[variant] = model
        reports[variant] = {
            "layers_quantized": report.layers_quantized,
            "layers_kept_fp32": report.layers_kept_fp32,
            "quantize_s": round(report.seconds, 2),
        }
    del pristine
    ppl = {
        name: perplexity(model, tokenizer, text)
        for name, model in tqdm(models.items(), desc="perplexity", leave=False)
    }
    speed = dict.fromkeys(models, 0.0)
    step_ms = dict.fromkeys(models, float("inf"))
    for _ in tqdm(range(2 if quick else 5), desc="generate reps", leave=False):
        for name, model in models.items():  # taking turns: noise hits every model alike
            tokens_per_s, median_step = _generate_speed(model, tokenizer, prompts)
            speed[name] = max(speed[name], tokens_per_s)
            step_ms[name] = min(step_ms[name], median_step)
    variants = [
        {
            "variant": name,
            "tokens_per_s": round(speed[name], 2),
            "speedup": round(speed[name] / speed["fp32"], 3),
            "median_step_ms": round(step_ms[name], 2),
            "step_speedup": round(step_ms["fp32"] / step_ms[name], 3),
            "ppl": round(ppl[name], 4),
            "ppl_change_pct": round(100 * (ppl[name] / ppl["fp32"] - 1), 2),
            **reports[name],
        }
        for name in VARIANTS
    ]
    default = next(v for v in variants if v["variant"] == DEFAULT_VARIANT)
    return {
        "model": ref,
        "threads": torch.get_num_threads(),
        "quick": quick,
        "new_tokens": NEW_TOKENS,
        "ppl_tokens": len(tokenizer(text).input_ids),
        "text_source": str(CHATS) if CHATS.is_file() else "benchmarks.tiny_model corpus",
        "fp32_tokens_per_s": round(speed["fp32"], 2),
        "fp32_median_step_ms": round(step_ms["fp32"], 2),
        "fp32_ppl": round(ppl["fp32"], 4),
        "default_variant": DEFAULT_VARIANT,
        "int8_tokens_per_s": default["tokens_per_s"],
        "int8_speedup": default["speedup"],
        "int8_ppl": default["ppl"],
        "int8_ppl_change_pct": default["ppl_change_pct"],
        "variants": variants,
    }


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"model {result['model']}, {result['threads']} threads, {result['new_tokens']} new "
        f"tokens, perplexity on {result['ppl_tokens']} tokens; best of the reps",
        f"{'variant':<14} {'tok/s':>7} {'speedup':>8} {'step ms':>8} {'step x':>7} {'ppl':>10} "
        f"{'ppl chg':>8} {'int8/fp32':>10}",
        f"{'fp32':<14} {result['fp32_tokens_per_s']:>7.1f} {1:>8.2f} "
        f"{result['fp32_median_step_ms']:>8.1f} {1:>7.2f} {result['fp32_ppl']:>10.3f}",
    ]
    for v in result["variants"]:
        mark = " (default)" if v["variant"] == result["default_variant"] else ""
        lines.append(
            f"{v['variant']:<14} {v['tokens_per_s']:>7.1f} {v['speedup']:>8.2f} "
            f"{v['median_step_ms']:>8.1f} {v['step_speedup']:>7.2f} {v['ppl']:>10.3f} "
            f"{v['ppl_change_pct']:>+7.1f}% {v['layers_quantized']:>4}/{v['layers_kept_fp32']:<5}"
            f"{mark}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", help="hub id, save_pretrained directory or .gguf file")
    parser.add_argument("--quick", action="store_true", help="shorter text, fewer reps")
    args = parser.parse_args(argv)
    result = measure_int8(args.model, quick=args.quick)
    print(_table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
