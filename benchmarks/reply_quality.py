"""Reply quality of the base model against reply adapters, on held-out conversations.

For each side (the base model, then each `--adapter NAME=DIR`):

- `perplexity`: of the real replies of the held-out conversations (`training.evaluate.is_heldout`,
  as the eval gate splits them), rendered exactly as the drafter renders its prompts;
- `fallback_heldout`: the share of greedy drafts for the held-out user messages (each with its
  history) that fall back; `fallback_probes`: the same over `training/data/probes.jsonl`, with
  sampling from the eval gate's fixed seed (as `training.evaluate.reply_metrics` drafts them);
- `margin`: the mean log-probability margin, summed over reply tokens, of the real reply
  (chosen) over the base model's greedy draft (rejected) for the same held-out message; and the
  share of messages where the real reply is the more likely (`margin_win`);
- every greedy held-out draft, for side-by-side tables.

`--pairs-out FILE --pairs N` also writes N synthetic preference pairs (TRL/`train preference`
rows) from the non-held-out conversations of `--train-data`: chosen = the real reply, rejected =
the base model's greedy draft for that message. `--reuse FILE` keeps the sides already in an
earlier result file (and its base drafts), so a second run only measures new adapters.

Run (real checkpoint, ../shared data; never in the tests):
    python -m benchmarks.reply_quality --model PATH.gguf \
        --data ../shared/data/coffee-chats/conversations.jsonl --conversations 12 \
        --adapter reply=ADAPTER_DIR --out results.json --persona "..."
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from bot.domain import Draft, DraftRequest, ReplyStyle, Role, Turn
from bot.nlp.generate import ReplyGenerator
from bot.nlp.models import BASE_ADAPTER, ModelHost
from training.evaluate import PROBE_SEED, is_heldout, probe_messages
from training.render import IGNORE_INDEX, Renderer, conversation_examples, render_example
from training.rows import Conversation, read_conversations

Message = tuple[tuple[Turn, ...], str, str]  # history, user text, the real reply


def user_messages(conversations: list[Conversation], limit: int) -> list[Message]:
    """Each user turn answered by a bot turn, with its history and the real reply."""
    out: list[Message] = []
    for conversation in conversations:
        turns = conversation.turns
        for i in range(1, len(turns)):
            if turns[i].role is Role.BOT and turns[i - 1].role is Role.USER:
                out.append((turns[: i - 1], turns[i - 1].text, turns[i].text))
    return out[:limit]


def nll(host: ModelHost, ids: tuple[int, ...], labels: tuple[int, ...]) -> tuple[float, int]:
    """Summed negative log-likelihood of the labelled tokens, and their count."""
    x = torch.tensor([ids], device=host.device)
    y = torch.tensor([labels], device=host.device)[:, 1:]
    logits = host.model(input_ids=x).logits[:, :-1].float()
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        y.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return float(loss), int((y != IGNORE_INDEX).sum())


def reply_logprob(host: ModelHost, renderer: Renderer, message: Message, reply: str) -> float:
    example = render_example(renderer, message[0], message[1], reply)
    return -nll(host, example.input_ids, example.labels)[0] if example else math.nan


def drafts(
    host: ModelHost, style: ReplyStyle, adapter: str, rows: list[tuple[Any, str]]
) -> list[Draft]:
    with ReplyGenerator(host, style) as generator:
        return generator.draft_many(
            [DraftRequest(tuple(h), t, style=style, adapter=adapter) for h, t in rows]
        )


def measure(
    host: ModelHost,
    renderer: Renderer,
    style: ReplyStyle,
    adapter: str | None,
    heldout: list[Conversation],
    messages: list[Message],
    rejected: list[str] | None,
    probes: list[str],
) -> dict[str, Any]:
    started = time.perf_counter()
    name = adapter or BASE_ADAPTER
    host.set_active_adapter(adapter)
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for conversation in heldout:
            for example in conversation_examples(renderer, conversation):
                n, k = nll(host, example.input_ids, example.labels)
                total, tokens = total + n, tokens + k
    greedy = replace(style, do_sample=False)
    held = drafts(host, greedy, name, [(h, t) for h, t, _ in messages])
    seeded = replace(style, seed=PROBE_SEED)
    probed = drafts(host, seeded, name, [((), t) for t in probes]) if probes else []
    result: dict[str, Any] = {
        "perplexity": math.exp(total / tokens),
        "reply_tokens": tokens,
        "fallback_heldout": sum(d.fallback_used for d in held) / len(held),
        "fallback_probes": (
            sum(d.fallback_used for d in probed) / len(probed) if probed else math.nan
        ),
        "drafts": [d.text for d in held],
        "draft_fallback": [d.fallback_used for d in held],
        "probe_drafts": [d.text for d in probed],
    }
    if rejected is None:  # the base side: its own drafts are the rejected replies
        rejected = [d.text if not d.fallback_used else "" for d in held]
    margins = []
    host.set_active_adapter(adapter)
    with torch.inference_mode():
        for message, worse in zip(messages, rejected, strict=True):
            if not worse or worse.strip() == message[2].strip():
                continue
            margins.append(
                reply_logprob(host, renderer, message, message[2])
                - reply_logprob(host, renderer, message, worse)
            )
    host.set_active_adapter(None)
    result["margin"] = sum(margins) / len(margins) if margins else math.nan
    result["margin_win"] = sum(m > 0 for m in margins) / len(margins) if margins else math.nan
    result["margin_pairs"] = len(margins)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def write_pairs(
    host: ModelHost, style: ReplyStyle, conversations: list[Conversation], n: int, out: Path
) -> None:
    train = [c for c in conversations if not is_heldout(c.key)]
    messages = user_messages(train, 10 * n)[::5][:n]  # spread over conversations and turns
    base = drafts(
        host, replace(style, do_sample=False), BASE_ADAPTER, [(h, t) for h, t, _ in messages]
    )
    with out.open("w", encoding="utf-8") as file:
        for (history, text, real), draft in zip(messages, base, strict=True):
            if draft.fallback_used or draft.text.strip() == real.strip():
                continue
            turns = [{"role": str(t.role), "text": t.text} for t in history]
            row = {
                "messages": [*turns, {"role": "user", "text": text}],
                "chosen": real,
                "rejected": draft.text,
                "kind": "synthetic-base-draft",
            }
            file.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> None:
    from bot.config import Settings
    from training.render import renderer_for
    from training.train_reply import account_style

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, required=True, help="SFT .jsonl conversations")
    parser.add_argument("--conversations", type=int, default=12, help="held-out ones to use")
    parser.add_argument("--messages", type=int, default=24, help="held-out user messages")
    parser.add_argument("--adapter", action="append", default=[], help="NAME=DIR")
    parser.add_argument("--probes", type=int, default=None, help="how many probes (0: none)")
    parser.add_argument("--persona", default=None)
    parser.add_argument("--reuse", type=Path, default=None)
    parser.add_argument("--train-data", type=Path, default=None)
    parser.add_argument("--pairs", type=int, default=0)
    parser.add_argument("--pairs-out", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    overrides: dict[str, Any] = {"model": args.model, "device": "cpu"}
    if args.persona:
        overrides["persona"] = args.persona
    settings = Settings(**overrides)
    style = account_style(settings, "default")
    started = time.perf_counter()
    host = ModelHost.load(args.model, device="cpu")
    load_s = time.perf_counter() - started
    renderer = renderer_for(host.tokenizer, host.model.config, style, settings.history_turns)
    heldout = [c for c in read_conversations(args.data) if is_heldout(c.key)][: args.conversations]
    messages = user_messages(heldout, args.messages)
    probes = probe_messages()[: args.probes]

    results: dict[str, Any] = json.loads(args.reuse.read_text()) if args.reuse else {}
    sides = results.setdefault("sides", {})
    results.update(
        load_s=round(load_s, 1),
        persona=style.persona,
        heldout_conversations=len(heldout),
        messages=[{"history": [t.text for t in h], "text": t, "real": r} for h, t, r in messages],
    )
    if "base" not in sides:
        sides["base"] = measure(host, renderer, style, None, heldout, messages, None, probes)
    base = sides["base"]
    rejected = [
        d if not f else "" for d, f in zip(base["drafts"], base["draft_fallback"], strict=True)
    ]
    for spec in args.adapter:
        name, _, path = spec.partition("=")
        host.load_adapter(name, path, activate=False)
        if name not in sides:
            sides[name] = measure(host, renderer, style, name, heldout, messages, rejected, probes)
    if args.pairs and args.pairs_out and args.train_data:
        write_pairs(host, style, read_conversations(args.train_data), args.pairs, args.pairs_out)
    args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    for name, side in sides.items():
        print(
            f"{name:>8}: perplexity {side['perplexity']:.2f} ({side['reply_tokens']} tokens), "
            f"fallback held-out {side['fallback_heldout']:.1%}, probes "
            f"{side['fallback_probes']:.1%}, margin {side['margin']:.2f} nats "
            f"(real reply preferred {side['margin_win']:.0%} of {side['margin_pairs']}), "
            f"{side['seconds']} s"
        )


if __name__ == "__main__":
    main()
