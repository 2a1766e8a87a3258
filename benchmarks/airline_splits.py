"""Fixed train and held-out splits of the public airline data, for the head figures in
docs/TRAINING.md.

`python -m benchmarks.airline_splits --data ../shared/data/airline --out DIR` writes, as
`{"text", "label"}` JSON lines that `autoreply train classifier --data` and
`benchmarks.heads_eval --data` read:

* `sent_train.jsonl` (2,000 tweets) and `sent_heldout.jsonl` (1,000 others), from
  `tweets.jsonl` shuffled with `random.Random(seed)`;
* `intent_train.jsonl` and `intent_heldout.jsonl` from the hand-labelled `intents.jsonl`,
  shuffled the same way, the held-out part being `--intent-heldout` of it (20%).

The data is not part of the project; these files are written outside it.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for text, label in rows:
            fh.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")


def write_splits(
    data: Path,
    out: Path,
    *,
    seed: int = 0,
    sentiment_train: int = 2000,
    sentiment_heldout: int = 1000,
    intent_heldout: float = 0.2,
) -> dict[str, int]:
    """Write the four files into `out`; returns their row counts."""
    out.mkdir(parents=True, exist_ok=True)
    tweets = [(r["text"], r["label"]) for r in _read(data / "tweets.jsonl")]
    random.Random(seed).shuffle(tweets)
    splits = {
        "sent_train": tweets[:sentiment_train],
        "sent_heldout": tweets[sentiment_train : sentiment_train + sentiment_heldout],
    }
    intents = [(r["text"], r["intent"]) for r in _read(data / "intents.jsonl")]
    random.Random(seed).shuffle(intents)
    cut = round(len(intents) * intent_heldout)
    splits["intent_heldout"], splits["intent_train"] = intents[:cut], intents[cut:]
    for name, rows in splits.items():
        _write(out / f"{name}.jsonl", rows)
    return {name: len(rows) for name, rows in splits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the airline data folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--intent-heldout", type=float, default=0.2)
    args = parser.parse_args()
    counts = write_splits(args.data, args.out, seed=args.seed, intent_heldout=args.intent_heldout)
    for name, n in counts.items():
        print(f"{args.out / name}.jsonl: {n} rows")


if __name__ == "__main__":
    main()
