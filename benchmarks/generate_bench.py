"""The model host against bare `model.generate`, on one model, in one process and one run.

Both sides generate exactly the same number of tokens (greedy, min_new_tokens equal to
max_new_tokens, no repetition penalties), from the same prompt token ids (the project's own
prompt for each message, with the account's persona and the model's prompt format).

(a) `e2e_latency_ratio`: one message at a time through the whole pipeline (store, analysis,
    micro-batcher and generation, safety gate, storage of the draft) against bare generate
    of the same prompt.
(b) `concurrent16_speedup`: 16 messages from 16 chats and users at once through the pipeline,
    against 16 sequential bare calls; `bare_batch16_speedup` is what one bare padded batch of
    the same 16 prompts gives over the same sequential calls.
(c) `mixed_adapter_ratio`: 16 rows over 4 LoRA adapters in one batch, against 16 rows of one
    adapter (time of the single-adapter batch over time of the mixed one).
(e) `per_row_stop_speedup`: 16 requests of two accounts with different reply caps, one call
    stopping each row itself, against one call per style.
(d) `int8_speedup`, `int8_ppl_change_pct`: the CPU int8 path (see benchmarks/int8_bench.py).
`fallback_rate`: the share of drafts that fell back to the canned reply over 100 fixed
customer messages, in the account's own decoding (sampling, chat format where the tokenizer
has a template, `--candidates` per message).

Without `--model` it uses GPT-2 124M with random weights: the compute is that of real GPT-2,
the words are noise (so its fallback rate means nothing). Run:
`autoreply bench generate [--model PATH|HUB_ID] [--quick]`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from benchmarks.bench_models import random_gpt2_dir, write_random_lora
from bot.accounts import Account, load_accounts
from bot.config import Settings
from bot.domain import DraftRequest, Incoming, Mode, ReplyStyle
from bot.nlp.batching import MicroBatcher
from bot.nlp.classify import LexicalClassifier
from bot.nlp.generate import ReplyGenerator
from bot.nlp.models import ModelHost
from bot.nlp.prompts import build_prompt, resolve_format
from bot.pipeline import Pipeline
from bot.safety.gate import SafetyGate
from bot.storage import accounts as account_store
from bot.storage import migrate
from bot.storage.db import Database

SHARED_TWEETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "airline" / "tweets.jsonl"
# Used when ../shared/data is not there (a user's clone): customer messages of our own.
BUILTIN_MESSAGES = [
    "Where is my order? It was supposed to arrive yesterday.",
    "My flight got cancelled and nobody told me anything.",
    "How do I change the delivery address on my order?",
    "Thanks for the quick help yesterday, really appreciated!",
    "The app keeps crashing when I try to pay.",
    "Can I get a refund for a damaged item?",
    "Is the store open on Sunday?",
    "I was charged twice for the same order.",
    "Your support line has had me on hold for an hour.",
    "Do you ship to Canada?",
    "Lost my bag on the connection in Chicago, what now?",
    "Great service today, the crew was lovely.",
    "How long does a refund usually take?",
    "I never received the confirmation email.",
    "Can I bring my dog on board?",
    "The coupon code does not work at checkout.",
    "Why was my account locked?",
    "I want to cancel my subscription.",
    "The package arrived but one item is missing.",
    "Can someone call me back about my booking?",
]
PERSONA = "You are the support account of a shop. Answer briefly and politely."


def customer_messages(count: int) -> list[str]:
    """`count` fixed customer messages: the first airline tweets when the shared data is
    there, else our own list, repeated."""
    if SHARED_TWEETS.is_file():
        texts: list[str] = []
        with SHARED_TWEETS.open(encoding="utf-8") as lines:
            for line in lines:
                texts.append(json.loads(line)["text"])
                if len(texts) == count:
                    return texts
    return [BUILTIN_MESSAGES[i % len(BUILTIN_MESSAGES)] for i in range(count)]


class Bench:
    """One loaded model and the fixed settings both sides share."""

    def __init__(self, host: ModelHost, new_tokens: int, tmp: Path) -> None:
        self.host = host
        self.new_tokens = new_tokens
        self.tmp = tmp
        self.style = ReplyStyle(
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            persona=PERSONA,
        )
        self.generator = ReplyGenerator(host, self.style)

    def prompt_ids(self, text: str) -> list[int]:
        return list(
            build_prompt(
                self.host.tokenizer,
                prompt_format=resolve_format("auto", self.host.tokenizer),
                persona=PERSONA,
                history=(),
                text=text,
                max_positions=self.host.max_positions,
                max_new_tokens=self.new_tokens,
            ).input_ids
        )

    def bare(self, prompts: Sequence[Sequence[int]]) -> float:
        """Seconds for one bare `generate` call over `prompts` (left-padded)."""
        host = self.host
        width = max(len(p) for p in prompts)
        pad = host.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        started = time.perf_counter()
        with torch.inference_mode():
            out = host.model.generate(  # type: ignore[operator]
                input_ids=ids.to(host.device),
                attention_mask=mask.to(host.device),
                max_new_tokens=self.new_tokens,
                min_new_tokens=self.new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=host.eos_token_id,
            )
        elapsed = time.perf_counter() - started
        assert out.shape[1] - width == self.new_tokens
        return elapsed

    # --- the pipeline side -------------------------------------------------------------------

    def pipeline(self, name: str) -> tuple[Pipeline, MicroBatcher, Database]:
        url = f"sqlite:///{self.tmp / f'{name}.db'}"
        migrate.ensure_schema(url)
        db = Database(url)
        settings = Settings(database_url=url, mode=Mode.AUTO, persona=PERSONA)
        account = load_accounts(settings).default
        account = replace(account, style=self.style, user_cooldown_s=0.0)
        with db.session() as s:
            account_store.bind(s, account.name, account.platform, account.handle)
        batcher = MicroBatcher(self.generator, window_s=0.02, max_batch=16)
        pipeline = Pipeline(
            db=db,
            classifier=LexicalClassifier(account.intent_labels),
            gate=SafetyGate.from_settings(settings),
            drafter=batcher,
            outbox=None,
            accounts={account.name: account},
            history_turns=6,
        )
        return pipeline, batcher, db


def _incoming(account: Account, index: int, text: str, run: str) -> Incoming:
    return Incoming(
        platform=account.platform,
        account=account.name,
        chat_id=f"{run}-chat-{index}",
        message_id=str(index),
        user_id=f"{run}-user-{index}",
        text=text,
    )


async def _timed_handles(
    pipeline: Pipeline, account: Account, texts: Sequence[str], run: str, concurrent: bool
) -> list[float]:
    messages = [_incoming(account, i, t, run) for i, t in enumerate(texts)]
    if concurrent:
        started = time.perf_counter()
        decisions = await asyncio.gather(*(pipeline.handle(m) for m in messages))
        elapsed = [time.perf_counter() - started]
    else:
        elapsed, decisions = [], []
        for message in messages:
            started = time.perf_counter()
            decisions.append(await pipeline.handle(message))
            elapsed.append(time.perf_counter() - started)
    assert all(d.draft_id is not None for d in decisions), decisions
    return elapsed


def latency_and_concurrency(bench: Bench, texts: Sequence[str], reps: int) -> dict[str, float]:
    """(a) and (b), interleaved so drift hits both sides alike."""
    pipeline, batcher, db = bench.pipeline("e2e")
    account = next(iter(pipeline._accounts.values()))
    prompts = [bench.prompt_ids(t) for t in texts]

    async def scenario() -> dict[str, float]:
        await _timed_handles(pipeline, account, texts[:1], "warm", concurrent=False)
        bench.bare(prompts[:1])
        e2e, bare1 = [], []
        for i in tqdm(range(reps), desc="(a) one message at a time", leave=False):
            bare1.append(bench.bare([prompts[i % len(prompts)]]))
            e2e += await _timed_handles(
                pipeline, account, [texts[i % len(texts)]], f"a{i}", concurrent=False
            )
        sequential = sum(
            bench.bare([p]) for p in tqdm(prompts, desc="(b) 16 sequential bare", leave=False)
        )
        batch16 = bench.bare(prompts)
        batches_before = batcher.stats.batches
        (together,) = await _timed_handles(pipeline, account, texts, "b", concurrent=True)
        batches = batcher.stats.batches - batches_before
        await batcher.aclose()
        tokens = len(texts) * bench.new_tokens
        return {
            "e2e_ms": 1000 * statistics.median(e2e),
            "bare1_ms": 1000 * statistics.median(bare1),
            "e2e_latency_ratio": statistics.median(e2e) / statistics.median(bare1),
            "bare_seq16_tok_s": tokens / sequential,
            "bare_batch16_tok_s": tokens / batch16,
            "pipeline16_tok_s": tokens / together,
            "concurrent16_speedup": sequential / together,
            "bare_batch16_speedup": sequential / batch16,
            "pipeline16_batches": float(batches),
        }

    try:
        return asyncio.run(scenario())
    finally:
        db.dispose()


def _best_pair(
    first: Callable[[], object], second: Callable[[], object], reps: int
) -> tuple[float, float]:
    """The best of `reps` timings of each side, run in turns (first, second, first, ...) so
    that a neighbour's load on this shared machine hits both sides alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(reps):
        for side, run in enumerate((first, second)):
            started = time.perf_counter()
            run()
            times[side].append(time.perf_counter() - started)
    return min(times[0]), min(times[1])


def mixed_adapters(bench: Bench, texts: Sequence[str], reps: int) -> dict[str, float]:
    """(c): 4 adapters over 16 rows against one adapter over 16 rows."""
    host = bench.host
    model_type = str(getattr(host.model.config, "model_type", "gpt2"))
    names = [f"bench{i}" for i in range(4)]
    # All written from the bare model before the first one wraps it.
    paths = [
        write_random_lora(host.model, model_type, bench.tmp / name, seed=seed)
        for seed, name in enumerate(names)
    ]
    for name, path in zip(names, paths, strict=True):
        host.load_adapter(name, str(path), activate=False)
    single = [DraftRequest((), t, adapter=names[0]) for t in texts]
    mixed = [DraftRequest((), t, adapter=names[i % 4]) for i, t in enumerate(texts)]
    bench.generator.draft_many(mixed[:2])  # warm
    t_single, t_mixed = _best_pair(
        lambda: bench.generator.draft_many(single),
        lambda: bench.generator.draft_many(mixed),
        reps,
    )
    return {
        "single_adapter16_s": t_single,
        "mixed_adapter16_s": t_mixed,
        "mixed_adapter_ratio": t_single / t_mixed,
    }


def per_row_stopping(bench: Bench, texts: Sequence[str], reps: int) -> dict[str, float]:
    """(e): two accounts, caps of n/2 and n tokens, 8 requests each; replies may end early
    (no forced length), identically on both sides since decoding is greedy."""
    short = replace(bench.style, max_new_tokens=bench.new_tokens // 2, min_new_tokens=0)
    long = replace(bench.style, min_new_tokens=0)
    requests = [
        DraftRequest((), t, style=short if i % 2 else long, adapter="__base__")
        for i, t in enumerate(texts)
    ]
    by_style = ReplyGenerator(bench.host, bench.style, group_by="style")
    try:
        t_row, t_style = _best_pair(
            lambda: bench.generator.draft_many(requests),
            lambda: by_style.draft_many(requests),
            reps,
        )
    finally:
        by_style.close()
    return {"per_row_s": t_row, "by_style_s": t_style, "per_row_stop_speedup": t_style / t_row}


def fallbacks(
    bench: Bench, messages: Sequence[str], candidates: int
) -> tuple[dict[str, float], Counter[str]]:
    """The share of drafts that fell back, in the account's own decoding (sampled, seeded)."""
    # ReplyStyle's defaults are the settings' defaults (a test holds them together).
    style = ReplyStyle(persona=PERSONA, candidates=candidates, seed=1234)
    reasons: Counter[str] = Counter()
    fell_back = 0
    step = 16
    for start in tqdm(range(0, len(messages), step), desc="fallback rate", leave=False):
        chunk = [DraftRequest((), m, style=style) for m in messages[start : start + step]]
        for draft in bench.generator.draft_many(chunk):
            fell_back += draft.fallback_used
            reasons.update(str(c.dropped) for c in draft.candidates if c.dropped)
    return {"fallback_rate": fell_back / len(messages), "fallback_messages": len(messages)}, reasons


def run(model: str | None = None, *, quick: bool = False, candidates: int = 4) -> dict[str, Any]:
    new_tokens = 16 if quick else 48
    reps = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        label = model or "random GPT-2 124M"
        ref = model or str(random_gpt2_dir())
        print(f"loading {label} ...", file=sys.stderr)
        host = ModelHost.load(ref, device="auto")
        bench = Bench(host, new_tokens, tmp)
        texts = customer_messages(16)
        results: dict[str, Any] = {
            "model": label,
            "device": host.device,
            "dtype": str(host.dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(),
            "new_tokens": new_tokens,
        }
        try:
            results |= latency_and_concurrency(bench, texts, reps=2 if quick else 5)
            results |= per_row_stopping(bench, texts, reps)
            if model is not None:  # random weights write noise: its fallback rate is 100%
                results |= fallbacks_block(bench, quick, candidates)
            results |= mixed_adapters(bench, texts, reps)
        finally:
            bench.generator.close()
        if host.device == "cpu":
            results |= int8_block(ref, quick)
    print(format_table(results))
    print(json.dumps(results))
    return results


def fallbacks_block(bench: Bench, quick: bool, candidates: int) -> dict[str, Any]:
    figures, reasons = fallbacks(bench, customer_messages(16 if quick else 100), candidates)
    return figures | {"candidates": candidates, "dropped": dict(reasons)}


def int8_block(ref: str, quick: bool) -> dict[str, Any]:
    try:
        from benchmarks.int8_bench import measure_int8
    except ImportError:  # pragma: no cover - the module ships beside this one
        return {}
    measured = measure_int8(ref, quick=quick)
    keys = ("int8_speedup", "int8_ppl_change_pct")
    return {key: measured[key] for key in keys if key in measured}


def format_table(results: dict[str, Any]) -> str:
    rows = [
        ("(a) pipeline, 1 message", "e2e_ms", "ms"),
        ("(a) bare generate, 1 message", "bare1_ms", "ms"),
        ("(a) e2e_latency_ratio (target <= 1.10)", "e2e_latency_ratio", ""),
        ("(b) bare, 16 sequential calls", "bare_seq16_tok_s", "tok/s"),
        ("(b) bare, one batch of 16", "bare_batch16_tok_s", "tok/s"),
        ("(b) pipeline, 16 concurrent messages", "pipeline16_tok_s", "tok/s"),
        ("(b) generate calls the pipeline made", "pipeline16_batches", ""),
        ("(b) concurrent16_speedup", "concurrent16_speedup", "x"),
        ("(b) bare_batch16_speedup", "bare_batch16_speedup", "x"),
        ("(c) mixed_adapter_ratio (target >= 0.8)", "mixed_adapter_ratio", ""),
        ("(e) per_row_stop_speedup over one call per style", "per_row_stop_speedup", "x"),
        ("(d) int8_speedup", "int8_speedup", "x"),
        ("(d) int8_ppl_change_pct", "int8_ppl_change_pct", "%"),
        ("fallback_rate", "fallback_rate", ""),
    ]
    head = (
        f"{results['model']} on {results['device']} ({results['dtype']}, "
        f"{results['threads']} threads), {results['new_tokens']} new tokens per reply"
    )
    width = max(len(r[0]) for r in rows)
    lines = [head, "-" * len(head)]
    for title, key, unit in rows:
        if key in results:
            lines.append(f"{title:<{width}}  {results[key]:>9.3f} {unit}")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--candidates", type=int, default=4)
    args = parser.parse_args()
    run(args.model, quick=args.quick, candidates=args.candidates)
