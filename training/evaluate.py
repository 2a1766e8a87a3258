"""The evaluation gate: a candidate adapter against what serves today, on the same data.

Reply adapters are measured on held-out replies (perplexity of the reply tokens, rendered
exactly as generation renders the prompt) and on a fixed probe set of customer messages
(`training/data/probes.jsonl`): the share of drafts that fall back, and the share the safety
gate blocks. Classifier heads are measured by macro-F1 and macro-recall on held-out labelled
examples. The baseline is the account's active adapter of that kind, or, when there is none,
the base model (replies) or the lexical rules (classifiers).

A candidate is promoted only if it beats the baseline by `promote_margin` and does not raise
the blocked share; a non-finite metric (a corrupted adapter) is refused outright. The metrics
of both sides are stored with the candidate, so `adapters show` tells why.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROBES_FILE = Path(__file__).with_name("data") / "probes.jsonl"
HELDOUT_SHARE = 0.1
FALLBACK_SLACK = 0.05  # the fallback rate may not rise by more than 5 points


def is_heldout(key: str, share: float = HELDOUT_SHARE) -> bool:
    """Whether an example (keyed by its text) belongs to the held-out split.

    By hash, not by position: the same example stays on the same side across exports and
    retrainings, so a candidate is never evaluated on what it was trained on.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def probe_messages(path: Path = PROBES_FILE) -> list[str]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line in lines if line.strip()]


@dataclass(frozen=True)
class ReplyMetrics:
    perplexity: float
    fallback_rate: float
    blocked_share: float
    heldout: int
    probes: int

    @property
    def sound(self) -> bool:
        return all(math.isfinite(v) for v in (self.perplexity, self.fallback_rate))


@dataclass(frozen=True)
class ClassifierMetrics:
    macro_f1: float
    macro_recall: float
    accuracy: float
    examples: int
    per_class_recall: dict[str, float] = field(default_factory=dict)

    @property
    def sound(self) -> bool:
        return all(math.isfinite(v) for v in (self.macro_f1, self.macro_recall))


@dataclass(frozen=True)
class Verdict:
    """The gate's answer: promote or not, why, and the figures behind it."""

    candidate: str
    baseline: str
    promote: bool
    reason: str
    candidate_metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]

    def table(self) -> str:
        keys = sorted(set(self.candidate_metrics) | set(self.baseline_metrics))
        width = max([len(k) for k in keys] + [6])
        lines = [f"{'metric':<{width}}  {self.baseline[:24]:>24}  {self.candidate[:24]:>24}"]
        for key in keys:
            lines.append(
                f"{key:<{width}}  {_cell(self.baseline_metrics.get(key)):>24}  "
                f"{_cell(self.candidate_metrics.get(key)):>24}"
            )
        lines.append(("PROMOTE: " if self.promote else "KEEP: ") + self.reason)
        return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return "…"
    return "-" if value is None else str(value)


def decide_reply(
    candidate: ReplyMetrics, baseline: ReplyMetrics, margin: float
) -> tuple[bool, str]:
    if not candidate.sound:
        return False, "the candidate's perplexity is not finite: the adapter is broken"
    if candidate.blocked_share > baseline.blocked_share:
        return False, (
            f"the safety gate blocks more of its probe drafts ({candidate.blocked_share:.1%} "
            f"against {baseline.blocked_share:.1%})"
        )
    if candidate.fallback_rate > baseline.fallback_rate + FALLBACK_SLACK:
        return False, (
            f"it falls back more often ({candidate.fallback_rate:.1%} against "
            f"{baseline.fallback_rate:.1%})"
        )
    needed = baseline.perplexity * (1 - margin)
    if not candidate.perplexity < needed:
        return False, (
            f"held-out perplexity {candidate.perplexity:.3f} is not below {needed:.3f} "
            f"({margin:.0%} under {baseline.perplexity:.3f})"
        )
    return True, (
        f"held-out perplexity {candidate.perplexity:.3f} against {baseline.perplexity:.3f}, "
        f"no more blocked drafts"
    )


def decide_classifier(
    candidate: ClassifierMetrics, baseline: ClassifierMetrics, margin: float
) -> tuple[bool, str]:
    if not candidate.sound:
        return False, "the candidate's scores are not finite: the head is broken"
    needed = baseline.macro_f1 * (1 + margin)
    if not candidate.macro_f1 > needed:
        return False, (
            f"macro-F1 {candidate.macro_f1:.3f} does not beat {needed:.3f} ({margin:.0%} over "
            f"{baseline.macro_f1:.3f})"
        )
    return True, f"macro-F1 {candidate.macro_f1:.3f} against {baseline.macro_f1:.3f}"


def classifier_metrics(truth: Sequence[str], predicted: Sequence[str]) -> ClassifierMetrics:
    """Macro-F1 and macro-recall over the labels present in `truth`."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    labels = sorted(set(truth))
    if not labels:
        raise ValueError("no held-out examples to evaluate on")
    per_class = recall_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return ClassifierMetrics(
        macro_f1=float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        macro_recall=float(
            recall_score(truth, predicted, labels=labels, average="macro", zero_division=0)
        ),
        accuracy=float(accuracy_score(truth, predicted)),
        examples=len(truth),
        per_class_recall={label: float(r) for label, r in zip(labels, per_class, strict=True)},
    )


def predictions(
    classify_many: Callable[[Sequence[str]], Sequence[Any]], task: str, texts: Sequence[str]
) -> list[str]:
    """The label a classifier gives each text for `task` (intent, sentiment or safety)."""
    out: list[str] = []
    for analysis in classify_many(texts):
        if task == "intent":
            out.append(str(analysis.intent))
        elif task == "sentiment":
            out.append(str(analysis.sentiment))
        else:
            safety = analysis.scores.get("safety_label") if analysis.scores else None
            out.append(str(safety) if safety is not None else "neither")
    return out


def metrics_dict(metrics: ReplyMetrics | ClassifierMetrics) -> dict[str, Any]:
    return asdict(metrics)


def labelled_heldout(rows: Sequence[Mapping[str, str]]) -> tuple[list[str], list[str]]:
    """The held-out part of labelled rows ({"text", "label"}): texts and labels."""
    held = [row for row in rows if is_heldout(row["text"])]
    return [row["text"] for row in held], [row["label"] for row in held]
