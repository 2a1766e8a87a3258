"""The safety head's splits (benchmarks/safety_splits.py) on a small stand-in for ../shared/data:
every source lands on one side, the stereotype pairs stay whole, and the written data files
parse."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.safety_splits import NEUTRAL, PAIRS, _lines, write_splits


def _jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _data(root: Path) -> Path:
    davidson = [
        {"text": f"{label} tweet {i}", "label": label}
        for label in ("hate", "offensive", "neither")
        for i in range(12)
    ]
    _jsonl(root / "safety" / "davidson_tweets.jsonl", davidson)
    harmful = [{"text": f"how to do harm {i}", "label": "unsafe_request"} for i in range(10)]
    _jsonl(root / "safety" / "harmful_requests.jsonl", harmful)
    toxigen = [
        {"text": f"statement {i}", "label": "hate" if i % 2 else "neutral", "target_group": "x"}
        for i in range(20)
    ]
    _jsonl(root / "safety" / "toxigen_statements.jsonl", toxigen)
    tweets = [{"text": f"flight {i} was late", "label": "negative"} for i in range(30)]
    _jsonl(root / "airline" / "tweets.jsonl", tweets)
    return root


def _read(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_pairs_stay_whole_and_every_row_lands_on_one_side(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "# group, hateful, plain\n"
        + "".join(f"g\thateful claim {i}\tplain rejection {i}\n" for i in range(9)),
        encoding="utf-8",
    )
    neutral = tmp_path / "neutral.txt"
    neutral.write_text("# comment\n" + "".join(f"plain fact {i}\n" for i in range(6)))

    counts = write_splits(
        _data(tmp_path / "data"),
        tmp_path / "out",
        davidson=4,
        airline=6,
        neutral=neutral,
        pairs=pairs,
        toxigen_repeat=2,
    )

    train = _read(tmp_path / "out" / "safety_train.jsonl")
    heldout = _read(tmp_path / "out" / "safety_heldout.jsonl")
    assert counts == {"safety_train": len(train), "safety_heldout": len(heldout)}
    # 4 per Davidson class, 7 of 10 requests, 10 ToxiGen rows twice, 6 tweets, 4 facts, 6 pairs.
    assert len(train) == 12 + 7 + 20 + 6 + 4 + 12
    held = {(r["source"], r["label"]) for r in heldout}
    assert ("pairs_written", "hate") in held and ("pairs_written", "neither") in held
    numbers = {
        side: {
            r["text"].rsplit(" ", 1)[1]
            for r in rows
            if r["text"].startswith(("hateful", "plain r"))
        }
        for side, rows in (("train", train), ("heldout", heldout))
    }
    assert len(numbers["train"]) == 6 and len(numbers["heldout"]) == 3
    assert not numbers["train"] & numbers["heldout"]  # a held-out pair was never trained on
    for rows in (train, heldout):
        for r in rows:
            if "claim" in r["text"]:
                assert r["label"] == "hate"
            if "rejection" in r["text"] or "fact" in r["text"]:
                assert r["label"] == "neither"
    assert not {r["text"] for r in train} & {r["text"] for r in heldout}


def test_the_written_files_parse() -> None:
    pairs = [line.split("\t") for line in _lines(PAIRS)]
    assert len(pairs) >= 150 and all(len(p) == 3 and all(x.strip() for x in p) for p in pairs)
    hateful = {p[1] for p in pairs}
    plain = {p[2] for p in pairs}
    assert len(hateful) == len(pairs) and not hateful & plain
    assert len(_lines(NEUTRAL)) >= 600
