"""Scores for a classifier head: accuracy, macro F1 and recall, calibration error, temperature.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar T fitted to minimise
the negative log-likelihood on held-out rows: the argmax, and so accuracy and F1, stay the
same, while the probabilities stop being over- (T > 1) or under-confident (T < 1).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def classification_metrics(
    predicted: Sequence[int], gold: Sequence[int], labels: Sequence[str]
) -> dict[str, object]:
    """accuracy, macro_f1 and macro_recall over the labels present in `gold`, and per-class
    recall. A label never in `gold` is left out of the macro averages (its recall is undefined)."""
    present = sorted(set(gold))
    recall: dict[str, float] = {}
    f1s = []
    for c in present:
        true_pos = sum(1 for p, g in zip(predicted, gold, strict=True) if p == g == c)
        support = sum(1 for g in gold if g == c)
        claimed = sum(1 for p in predicted if p == c)
        r = true_pos / support
        precision = true_pos / claimed if claimed else 0.0
        recall[labels[c]] = r
        f1s.append(2 * precision * r / (precision + r) if precision + r else 0.0)
    correct = sum(1 for p, g in zip(predicted, gold, strict=True) if p == g)
    return {
        "accuracy": correct / len(gold) if gold else 0.0,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "macro_recall": sum(recall.values()) / len(recall) if recall else 0.0,
        "recall": recall,
    }


def expected_calibration_error(probs: torch.Tensor, gold: torch.Tensor, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence
    bins weighted by how many rows fall in each."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == gold).float()
    edges = torch.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for low, high in itertools.pairwise(edges.tolist()):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            gap = (confidence[inside].mean() - correct[inside].mean()).abs().item()
            total += gap * inside.float().mean().item()
    return total


def nll(logits: torch.Tensor, gold: torch.Tensor, temperature: float = 1.0) -> float:
    return float(F.cross_entropy(logits / temperature, gold).item())


def fit_temperature(logits: torch.Tensor, gold: torch.Tensor, iterations: int = 60) -> float:
    """The T that minimises the NLL of softmax(logits / T) on these rows, in [0.05, 20].

    The NLL is convex in 1/T (log-sum-exp of a linear function, minus a linear one), so a
    golden-section search over 1/T finds the minimum; no gradients, same answer every run.
    """
    logits = logits.detach().float()
    ratio = (math.sqrt(5) - 1) / 2
    low, high = 1 / 20.0, 1 / 0.05
    for _ in range(iterations):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if nll(logits, gold, 1 / left) <= nll(logits, gold, 1 / right):
            high = right
        else:
            low = left
    return 1 / ((low + high) / 2)
