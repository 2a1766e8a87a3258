"""LoRA training throughput: our trainer against a bare peft + torch loop, side by side.

Both sides train the same LoRA (the model's preset, r=8) on the same base model, the same
examples in the same batches (same batch size, same sequence lengths: our length-grouped
order), with AdamW at the same learning rate, one optimizer step per batch. The bare loop is
what a peft tutorial writes: right-padded batches, `model(..., labels=labels).loss`,
backward, step. Ours runs `training.loop.Trainer` in both of its batch layouts, "group"
(padded rows of similar length) and "pack" (one row per batch, block-diagonal attention).

Figures: training tokens per second (real tokens, prompts included, padding not), and
`train_ratio` = ours ("group", the default) / bare; the target is >= 0.9. Each side gets one
untimed warm-up step, and the sides alternate so drift in the machine's speed hits both.

Without `--model` it uses GPT-2 124M with random weights (the compute of real GPT-2). Run:
`autoreply bench train [--model PATH|HUB_ID] [--quick]`.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
from peft import PeftModel, TaskType, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from benchmarks.bench_models import random_gpt2_dir
from benchmarks.generate_bench import BUILTIN_MESSAGES, PERSONA
from bot.domain import ReplyStyle, Role, Turn
from bot.nlp.loading import load_pretrained, pick_device
from training.batches import Layout, collate, epoch_order
from training.loop import LoopConfig, Trainer
from training.lora import lora_config
from training.render import Example, render_example, renderer_for

REPLIES = [
    "Sorry to hear that! Could you send us your order number so we can check?",
    "Thanks for reaching out. We ship to most countries; delivery takes three to five days.",
    "Of course, returns are free within thirty days. Just use the label in your parcel.",
    "We are open from nine to six on weekdays and from ten to four on Saturdays.",
    "Thank you so much, we are glad you enjoyed it!",
    "Please try updating the app; if it still crashes, send us a screenshot and we'll look.",
]
LR = 2e-4
SEED = 0


def bench_examples(
    tokenizer: PreTrainedTokenizerBase, config: Any, count: int, max_history: int
) -> list[Example]:
    """`count` support exchanges with 0..max_history turns of history, rendered as the
    drafter would prompt them (so lengths vary as in real data)."""
    rng = random.Random(SEED)
    style = ReplyStyle(persona=PERSONA)
    renderer = renderer_for(tokenizer, config, style, history_turns=max_history)
    examples: list[Example] = []
    while len(examples) < count:
        history = [
            Turn(Role.USER if i % 2 == 0 else Role.BOT, rng.choice(BUILTIN_MESSAGES + REPLIES))
            for i in range(2 * rng.randint(0, max_history // 2))
        ]
        example = render_example(
            renderer, history, rng.choice(BUILTIN_MESSAGES), rng.choice(REPLIES)
        )
        if example is not None:
            examples.append(example)
    return examples


def _wrap(base: PreTrainedModel) -> PeftModel:
    torch.manual_seed(SEED)
    return get_peft_model(base, lora_config(base, TaskType.CAUSAL_LM))


def _unwrap(model: PeftModel) -> None:
    """Take the LoRA layers out again, so the next side wraps a clean base."""
    base = model.unload()
    if "peft_config" in vars(base):  # a stale one confuses the next wrap
        delattr(base, "peft_config")


def _warm_up(model: PeftModel, examples: Sequence[Example], device: str, pad_id: int) -> None:
    batch = collate(examples, "group", pad_id).to(device)
    model.train()
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
    out.loss.backward()
    model.zero_grad(set_to_none=True)


def bare_tokens_per_s(
    base: PreTrainedModel, batches: Sequence[Sequence[Example]], device: str, pad_id: int
) -> float:
    """A tutorial's peft loop over `batches`: tokens per second."""
    model = _wrap(base)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    _warm_up(model, batches[0], device, pad_id)
    tokens, started = 0, time.perf_counter()
    for examples in batches:
        batch = collate(examples, "group", pad_id).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels
            ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # as a loop that logs its loss does (and a CUDA sync)
        tokens += batch.tokens
    elapsed = time.perf_counter() - started
    _unwrap(model)
    return tokens / elapsed


def ours_tokens_per_s(
    base: PreTrainedModel,
    examples: Sequence[Example],
    batch_size: int,
    layout: Layout,
    device: str,
    pad_id: int,
) -> float:
    model = _wrap(base)
    _warm_up(model, examples[:batch_size], device, pad_id)
    config = LoopConfig(
        epochs=1, lr=LR, batch_size=batch_size, seed=SEED, warmup_ratio=0.0, layout=layout
    )
    trainer = Trainer(model, examples, [], config, device=device, pad_id=pad_id, progress=False)
    result = trainer.fit()
    _unwrap(model)
    return result.tokens_per_s


def run(model: str | None = None, *, quick: bool = False) -> dict[str, Any]:
    steps, batch_size, history, rounds = (4, 4, 2, 1) if quick else (12, 8, 6, 2)
    ref = model or str(random_gpt2_dir())
    label = model or "random GPT-2 124M"
    device, dtype = pick_device("auto")
    print(f"loading {label} ...", file=sys.stderr)
    tokenizer = load_pretrained(ref, AutoTokenizer.from_pretrained)
    base = load_pretrained(ref, AutoModelForCausalLM.from_pretrained, dtype=dtype)
    module: torch.nn.Module = base  # typed calls (transformers wraps `to`)
    module.to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = bench_examples(tokenizer, base.config, steps * batch_size, history)
    order = epoch_order([len(e) for e in examples], batch_size, SEED, 0)
    batches = [[examples[i] for i in indices] for indices in order]
    padded = sum(len(b) * max(len(e) for e in b) for b in batches)
    real = sum(len(e) for e in examples)
    sides: dict[str, list[float]] = {"bare": [], "group": [], "pack": []}
    for _ in range(rounds):  # alternate the sides; keep each side's best round
        sides["bare"].append(bare_tokens_per_s(base, batches, device, pad))
        for layout in ("group", "pack"):
            sides[layout].append(ours_tokens_per_s(base, examples, batch_size, layout, device, pad))
    best = {side: max(values) for side, values in sides.items()}
    results: dict[str, Any] = {
        "model": label,
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "steps": steps,
        "batch_size": batch_size,
        "mean_tokens": round(real / len(examples), 1),
        "padding_share": round(1 - real / padded, 3),
        "bare_tok_s": round(best["bare"], 1),
        "ours_group_tok_s": round(best["group"], 1),
        "ours_pack_tok_s": round(best["pack"], 1),
        "train_ratio": round(best["group"] / best["bare"], 3),
        "pack_vs_group": round(best["pack"] / best["group"], 3),
    }
    print(format_table(results))
    print(json.dumps(results))
    return results


def format_table(results: dict[str, Any]) -> str:
    rows = [
        ("bare peft + torch loop", "bare_tok_s", "tok/s"),
        ("ours, length-grouped batches (default)", "ours_group_tok_s", "tok/s"),
        ("ours, packed rows", "ours_pack_tok_s", "tok/s"),
        ("train_ratio: ours / bare (target >= 0.9)", "train_ratio", "x"),
        ("pack / group", "pack_vs_group", "x"),
        ("padding share of grouped batches", "padding_share", ""),
    ]
    head = (
        f"{results['model']} on {results['device']} ({results['dtype']}, {results['threads']} "
        f"threads): {results['steps']} steps of {results['batch_size']} examples, "
        f"{results['mean_tokens']} tokens each on average"
    )
    width = max(len(r[0]) for r in rows)
    lines = [head, "-" * len(head)]
    lines += [f"{t:<{width}}  {results[k]:>10.3f} {u}" for t, k, u in rows if k in results]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run(args.model, quick=args.quick)
