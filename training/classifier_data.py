"""Labelled texts for a classifier head: read, check against the task's labels, split, hash.

Pure stages over plain rows, no torch. Input is JSON lines with "text" and "label" (the
export's labels-<task>.jsonl has a "source" too, which is ignored).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import InputError
from bot.labels import SENTIMENTS, check_label

TASKS = ("intent", "sentiment", "safety")


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str


def read_examples(path: Path) -> list[Example]:
    """Every row of a JSONL file with a non-empty "text" and a "label"; blank lines skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}; check the --data path") from exc
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, label = row["text"], row["label"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f'{path}:{number} is not a JSON object with "text" and "label"; fix that line'
            ) from exc
        if isinstance(text, str) and text.strip():
            examples.append(Example(text, str(label).strip().lower()))
    return examples


def label_set(
    task: str, examples: Sequence[Example], intent_labels: Sequence[str], where: str = ""
) -> tuple[str, ...]:
    """The head's classes: the account's intent labels, the three sentiments, or the safety
    labels found in the data (sorted). Unknown intent or sentiment labels are refused."""
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; use one of: {', '.join(TASKS)}")
    if task == "safety":
        labels = tuple(sorted({e.label for e in examples}))
    else:
        for example in examples:
            check_label(task, example.label, intent_labels=intent_labels, where=where)
        labels = tuple(intent_labels) if task == "intent" else SENTIMENTS
    present = {e.label for e in examples}
    if len(present) < 2:
        raise InputError(
            f"the {task} data has {len(present)} distinct label(s); a classifier needs "
            "examples of at least two"
        )
    return labels


def stratified_split(
    examples: Sequence[Example], val_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Train and validation rows with each label's share kept in both (shuffled, seeded).

    Every label with two or more rows puts at least one in validation."""
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    train: list[Example] = []
    val: list[Example] = []
    for label in sorted(by_label):
        rows = by_label[label][:]
        rng.shuffle(rows)
        n_val = max(1, round(len(rows) * val_fraction)) if len(rows) >= 2 else 0
        val.extend(rows[:n_val])
        train.extend(rows[n_val:])
    rng.shuffle(train)
    if not val or not train:
        raise InputError(
            f"{len(examples)} examples are too few to hold some out for validation; "
            "give at least two per label"
        )
    return train, val


def class_weights(
    examples: Iterable[Example], labels: Sequence[str], cap: float = 10.0
) -> list[float]:
    """Inverse-frequency weights, at most `cap` times the most frequent label's, scaled to
    mean 1 over the labels present; absent labels get 0. The cap keeps a label seen once or
    twice from dominating the loss (and the validation loss that early stopping watches)."""
    counts = Counter(e.label for e in examples)
    present = [label for label in labels if counts[label]]
    most = max(counts[label] for label in present)
    raw = {label: min(most / counts[label], cap) for label in present}
    mean = sum(raw.values()) / len(raw)
    return [raw[label] / mean if label in raw else 0.0 for label in labels]


def data_hash(examples: Iterable[Example]) -> str:
    """sha256 of the rows as trained on (order included), for the registry."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.text, example.label], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()
