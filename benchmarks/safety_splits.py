"""Fixed train and held-out splits for a safety head, from the public data in ../shared/data.

`python -m benchmarks.safety_splits --data ../shared/data --out DIR` writes `{"text", "label"}`
JSON lines with the labels `neither`, `offensive`, `hate` and `unsafe_request`:

* `safety_train.jsonl`, for `autoreply train classifier --task safety --data`;
* `safety_heldout.jsonl`, never trained on, each row with a `source` for the per-set figures
  of `benchmarks.safety_head_eval`.

Every source is shuffled with `random.Random(seed)` and cut in the same place each time:
Davidson tweets (hate, offensive, neither; `--davidson` per class to train, half that held
out), AdvBench harmful requests (70% train), ToxiGen statements (implicit hate / neutral, half
and half; neutral becomes `neither`), and airline tweets as ordinary brand traffic (`neither`,
taken from the end of the shuffled file so they never meet the sentiment splits of
`benchmarks.airline_splits`). With `--neutral FILE` (default: the project's hand-written
`benchmarks/data/neutral_group_statements.txt`), two thirds of those neutral statements about
identity groups train as `neither` and a third is held out: ToxiGen alone has too few neutral
statements to teach a head that talking about a group is not hate. With `--pairs FILE` (default:
`benchmarks/data/stereotype_pairs.tsv`, also hand-written), each pair is a statement of implicit
hate (`hate`) and one that names the same stereotype to reject it (`neither`); two thirds of the
pairs train and a third is held out, whole pairs on each side, so a held-out stereotype was never
seen in either form. ToxiGen's 110 training statements alone teach a head the stereotypes' words
rather than what is said about them. The public data is not part of the project; write these
files outside it.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

Row = dict[str, str]


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _write(path: Path, rows: list[Row]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _cut(rows: list[Row], share: float) -> tuple[list[Row], list[Row]]:
    at = round(len(rows) * share)
    return rows[:at], rows[at:]


NEUTRAL = Path(__file__).parent / "data" / "neutral_group_statements.txt"
PAIRS = Path(__file__).parent / "data" / "stereotype_pairs.tsv"


def _lines(path: Path) -> list[str]:
    """The file's lines without blanks and `#` comments."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def write_splits(
    data: Path,
    out: Path,
    *,
    seed: int = 0,
    davidson: int = 900,
    airline: int = 900,
    neutral: Path | None = NEUTRAL,
    pairs: Path | None = PAIRS,
    toxigen_repeat: int = 1,
) -> dict[str, int]:
    """Write both files into `out`; returns their row counts."""
    out.mkdir(parents=True, exist_ok=True)
    train: list[Row] = []
    heldout: list[Row] = []

    tweets = _read(data / "safety" / "davidson_tweets.jsonl")
    random.Random(seed).shuffle(tweets)
    for label in ("hate", "offensive", "neither"):
        rows = [{"text": r["text"], "label": label} for r in tweets if r["label"] == label]
        train += rows[:davidson]
        heldout += [{**r, "source": "davidson"} for r in rows[davidson : davidson + davidson // 2]]

    harmful = [
        {"text": r["text"], "label": "unsafe_request"}
        for r in _read(data / "safety" / "harmful_requests.jsonl")
    ]
    random.Random(seed).shuffle(harmful)
    first, rest = _cut(harmful, 0.7)
    train += first
    heldout += [{**r, "source": "harmful_requests"} for r in rest]

    statements = [
        {"text": r["text"], "label": "hate" if r["label"] == "hate" else "neither"}
        for r in _read(data / "safety" / "toxigen_statements.jsonl")
    ]
    random.Random(seed).shuffle(statements)
    first, rest = _cut(statements, 0.5)
    train += first * toxigen_repeat  # few rows: repeated so they weigh against 1,800 tweets
    heldout += [{**r, "source": "toxigen"} for r in rest]

    brand = [
        {"text": r["text"], "label": "neither"} for r in _read(data / "airline" / "tweets.jsonl")
    ]
    random.Random(seed).shuffle(brand)
    brand = brand[-airline - airline // 2 :]
    train += brand[:airline]
    heldout += [{**r, "source": "airline"} for r in brand[airline:]]

    if neutral is not None:
        written = [{"text": line, "label": "neither"} for line in _lines(neutral)]
        random.Random(seed).shuffle(written)
        first, rest = _cut(written, 2 / 3)
        train += first
        heldout += [{**r, "source": "neutral_written"} for r in rest]

    if pairs is not None:
        both = [line.split("\t") for line in _lines(pairs)]
        random.Random(seed).shuffle(both)
        at = round(len(both) * 2 / 3)
        for i, (_group, hateful, plain) in enumerate(both):
            rows = [{"text": hateful, "label": "hate"}, {"text": plain, "label": "neither"}]
            if i < at:
                train += rows
            else:
                heldout += [{**r, "source": "pairs_written"} for r in rows]

    random.Random(seed).shuffle(train)
    _write(out / "safety_train.jsonl", train)
    _write(out / "safety_heldout.jsonl", heldout)
    return {"safety_train": len(train), "safety_heldout": len(heldout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the ../shared/data folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--davidson", type=int, default=900, help="training rows per class")
    parser.add_argument("--airline", type=int, default=900, help="airline tweets to train")
    parser.add_argument("--toxigen-repeat", type=int, default=1, help="ToxiGen rows, times")
    parser.add_argument("--neutral", type=Path, default=NEUTRAL, help="neutral statements")
    parser.add_argument("--no-neutral", action="store_true", help="leave them out")
    parser.add_argument("--pairs", type=Path, default=PAIRS, help="hateful / plain pairs")
    parser.add_argument("--no-pairs", action="store_true", help="leave them out")
    args = parser.parse_args()
    counts = write_splits(
        args.data,
        args.out,
        seed=args.seed,
        davidson=args.davidson,
        airline=args.airline,
        toxigen_repeat=args.toxigen_repeat,
        neutral=None if args.no_neutral else args.neutral,
        pairs=None if args.no_pairs else args.pairs,
    )
    for name, n in counts.items():
        print(f"{args.out / name}.jsonl: {n} rows")


if __name__ == "__main__":
    main()
