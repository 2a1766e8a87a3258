"""A classifier head against the lexical rules on the same held-out labelled rows.

`python -m benchmarks.heads_eval --task sentiment --data heldout.jsonl --head DIR` prints
accuracy, macro-F1, macro-recall and per-class recall for both, the head's calibration error
(with and without its fitted temperature) and its speed on these rows (model load excluded).
The head directory is what `autoreply train classifier --out DIR` (or a registry slot) holds.
Used for the figures in docs/TRAINING.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bot.config import DEFAULT_INTENTS, Settings
from bot.domain import Analysis
from bot.nlp.classify import LexicalClassifier
from bot.nlp.heads import HeadClassifier, load_heads, read_head, safety_label
from training.calibration import classification_metrics, expected_calibration_error
from training.classifier_data import read_examples


def _label(analysis: Analysis, task: str) -> str:
    if task == "intent":
        return analysis.intent
    if task == "sentiment":
        return analysis.sentiment.value
    found = safety_label(analysis)
    return found[0] if found else "none"


def _scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    labels = sorted(set(gold) | set(predicted))
    index = {label: i for i, label in enumerate(labels)}
    return classification_metrics([index[p] for p in predicted], [index[g] for g in gold], labels)


def evaluate(
    task: str,
    data: Path,
    head: Path,
    *,
    intent_labels: Sequence[str] = DEFAULT_INTENTS,
    batch_size: int = 16,
) -> dict[str, Any]:
    rows = read_examples(data)
    texts, gold = [r.text for r in rows], [r.label for r in rows]
    rules = LexicalClassifier(intent_labels)
    lexical = [_label(a, task) for a in rules.classify_many(texts)]
    spec = read_head(head.name, head)
    loaded = load_heads(Settings(device="cpu"), {task: (head.name, str(head))}, intent_labels)
    classifier = HeadClassifier(loaded, rules, batch_size=batch_size)
    started = time.perf_counter()
    analyses = classifier.classify_many(texts)
    seconds = time.perf_counter() - started
    probs = torch.tensor([[a.scores[f"{task}:{label}"] for label in spec.labels] for a in analyses])
    target = torch.tensor([spec.labels.index(g) if g in spec.labels else -1 for g in gold])
    known = target >= 0
    raw = probs**spec.temperature  # softmax(z / T) ** T is proportional to softmax(z)
    raw = raw / raw.sum(1, keepdim=True)
    return {
        "task": task,
        "rows": len(rows),
        "head": {
            **_scores(gold, [_label(a, task) for a in analyses]),
            "ece": expected_calibration_error(raw[known], target[known]),
            "ece_calibrated": expected_calibration_error(probs[known], target[known]),
            "temperature": spec.temperature,
            "lines_per_s": round(len(rows) / seconds, 1),
        },
        "lexical": _scores(gold, lexical),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=("intent", "sentiment", "safety"))
    parser.add_argument("--data", required=True, type=Path, help='JSONL {"text", "label"}')
    parser.add_argument("--head", required=True, type=Path, help="the head's directory")
    args = parser.parse_args()
    print(json.dumps(evaluate(args.task, args.data, args.head), indent=2))


if __name__ == "__main__":
    main()
