"""Reply latency while a training runs beside the service, against no training, in one run.

One message at a time goes through the whole pipeline (store, analysis, micro-batcher and
generation, safety gate, storage) on one model, in three conditions, interleaved in rounds so
drift hits them alike:

- `idle`: nothing else running;
- `nice10x1`: a LoRA training subprocess as the nightly runner starts it (niceness 10, one
  torch thread; `training.nightly.limit_resources`, the code the real child runs);
- `own_session`: as `nice10x1`, but the child in a session of its own (`setsid`). With the
  kernel's autogroup scheduling each session is one group with a fair share of the CPU, and
  niceness only counts inside a group: this is why the runner keeps the child in its session;
- `plain`: the same training at niceness 0 on as many threads as there are cores, i.e. what
  an unthrottled training would do to the replies.

The training child trains a LoRA (rank 8, GPT-2 presets) on random token batches with the same
model: the compute of a real training step, without needing an export. It counts its
optimizer steps, so the price of the limits for the training shows too.

Run: `python -m benchmarks.retrain_latency [--quick] [--model PATH] [--messages N]`.
Without `--model` it uses GPT-2 124M with random weights (benchmarks/bench_models.py);
`--quick` the tiny 2-layer GPT-2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONDITIONS = ("idle", "nice10x1", "own_session", "plain")
CHILD_BATCH = (4, 128)  # sequences x tokens per training step


@dataclass(frozen=True, slots=True)
class Training:
    threads: int
    nice: int
    new_session: bool = False


TRAININGS = {
    "nice10x1": Training(threads=1, nice=10),
    "own_session": Training(threads=1, nice=10, new_session=True),
    "plain": Training(threads=os.cpu_count() or 1, nice=0),
}


# --- the training child ----------------------------------------------------------------------


def child_main(model: str, threads: int, nice: int) -> None:
    """Train a LoRA on random batches until SIGTERM; print "ready", then the step count."""
    from training.nightly import limit_resources

    limit_resources(threads, nice)
    import torch
    from peft import TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.lora import lora_config

    stop = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    base = AutoModelForCausalLM.from_pretrained(model)
    peft_model = get_peft_model(base, lora_config(base, TaskType.CAUSAL_LM))
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
    vocab = int(base.config.vocab_size)
    generator = torch.Generator().manual_seed(0)
    steps = 0
    started = 0.0
    while not stop:
        ids = torch.randint(0, vocab, CHILD_BATCH, generator=generator)
        loss = peft_model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        steps += 1
        if steps == 1:
            started = time.perf_counter()
            print("ready", flush=True)
    elapsed = time.perf_counter() - started
    print(json.dumps({"steps": steps - 1, "seconds": elapsed}), flush=True)


def start_training(model: str, training: Training) -> subprocess.Popen[str]:
    """Start the child and return once it has taken its first step (model loaded)."""
    threads = str(training.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    argv = [sys.executable, "-m", "benchmarks.retrain_latency", "--child", "--model", model]
    argv += ["--threads", threads, "--nice", str(training.nice)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env=env, start_new_session=training.new_session
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"the training child did not start (said {line!r}); run it alone")
    return proc


def stop_training(proc: subprocess.Popen[str]) -> float:
    """Stop the child; returns its training steps per minute while it ran."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    done = json.loads(out.strip().splitlines()[-1])
    return 60.0 * float(done["steps"]) / max(float(done["seconds"]), 1e-9)


# --- the replies -----------------------------------------------------------------------------


def measure(model: str, messages: int, rounds: int, new_tokens: int) -> dict[str, Any]:
    from benchmarks.generate_bench import Bench, customer_messages
    from bot.domain import Incoming
    from bot.nlp.models import ModelHost

    latencies: dict[str, list[float]] = {c: [] for c in ("warm-up", *CONDITIONS)}
    steps_per_min: dict[str, list[float]] = {c: [] for c in TRAININGS}
    texts = customer_messages(messages)
    with tempfile.TemporaryDirectory() as tmp:
        host = ModelHost.load(model, device="cpu")
        bench = Bench(host, new_tokens, Path(tmp))
        pipeline, batcher, db = bench.pipeline("retrain")
        account = next(iter(pipeline._accounts.values()))
        counter = 0

        async def replies(condition: str) -> None:
            nonlocal counter
            for text in texts:
                counter += 1
                incoming = Incoming(
                    platform=account.platform,
                    account=account.name,
                    chat_id=f"chat-{counter}",
                    message_id=str(counter),
                    user_id=f"user-{counter}",
                    text=text,
                )
                started = time.perf_counter()
                decision = await pipeline.handle(incoming)
                latencies[condition].append(time.perf_counter() - started)
                assert decision.draft_id is not None, decision

        async def scenario() -> None:
            await replies("warm-up")
            for _ in range(rounds):
                for condition in CONDITIONS:
                    training = TRAININGS.get(condition)
                    proc = start_training(model, training) if training else None
                    try:
                        await replies(condition)
                    finally:
                        if proc is not None:
                            steps_per_min[condition].append(stop_training(proc))
                    recent = latencies[condition][-len(texts) :]
                    print(
                        f"{condition}: median {1000 * statistics.median(recent):.0f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
            await batcher.aclose()

        try:
            asyncio.run(scenario())
        finally:
            bench.generator.close()
            db.dispose()
    return summarise(latencies, steps_per_min, model, new_tokens)


def summarise(
    latencies: dict[str, list[float]],
    steps_per_min: dict[str, list[float]],
    model: str,
    new_tokens: int,
) -> dict[str, Any]:
    figures: dict[str, Any] = {"model": model, "new_tokens": new_tokens, "cores": os.cpu_count()}
    for condition in CONDITIONS:
        values = sorted(latencies[condition])
        figures[condition] = {
            "n": len(values),
            "median_ms": 1000 * statistics.median(values),
            "p95_ms": 1000 * _p95(values),
        }
        if condition in steps_per_min:
            figures[condition]["train_steps_per_min"] = statistics.mean(steps_per_min[condition])
    return figures


def _p95(sorted_values: Sequence[float]) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=20, method="inclusive")[-1]


def format_table(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['model']}, {figures['new_tokens']} new tokens per reply, "
        f"{figures['cores']} cores",
        f"{'condition':<44} {'n':>4} {'median ms':>10} {'p95 ms':>9} {'train steps/min':>16}",
    ]
    titles = {
        "idle": "no training",
        "nice10x1": "training at nice 10, 1 thread (the runner's)",
        "own_session": "same, child in a session of its own",
        "plain": "training at nice 0, all cores (unthrottled)",
    }
    for condition in CONDITIONS:
        row = figures[condition]
        steps = row.get("train_steps_per_min")
        lines.append(
            f"{titles[condition]:<44} {row['n']:>4} {row['median_ms']:>10.0f} "
            f"{row['p95_ms']:>9.0f} {'-' if steps is None else f'{steps:.1f}':>16}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model directory (default: random GPT-2).")
    parser.add_argument("--quick", action="store_true", help="The tiny 2-layer GPT-2, briefly.")
    parser.add_argument("--messages", type=int, default=None, help="Messages per round.")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds over the conditions.")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--nice", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.model, args.threads, args.nice)
        return
    model = args.model
    if model is None and args.quick:
        from benchmarks.tiny_model import build_tiny_model

        model = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="tiny-gpt2-"))))
    elif model is None:
        from benchmarks.bench_models import random_gpt2_dir

        model = str(random_gpt2_dir())
    messages = args.messages or (8 if args.quick else 12)
    figures = measure(model, messages, args.rounds, args.new_tokens)
    print(format_table(figures))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
