"""Accuracy of the lexical defaults on the project's labelled messages.

The figures are printed, recorded with `record_property` (junit XML) and shown in the terminal
summary. Only sane floors are asserted: the rules and the data were written by the same team,
so the figures flatter the rules and are no estimate of accuracy on real traffic.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bot.config import DEFAULT_INTENTS
from bot.nlp.classify import LexicalClassifier

DATA = Path(__file__).resolve().parents[2] / "training" / "data" / "labelled_messages.jsonl"


class _Summary:
    """Plugin registered at run time so the figures appear in pytest's terminal summary."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section("lexical classifier on labelled_messages.jsonl")
        for line in self.lines:
            terminalreporter.write_line(line)


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    f1s = []
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, pred, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def test_labelled_set_is_well_formed() -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 150
    assert all(set(r) == {"text", "intent", "sentiment"} for r in rows)
    counts = Counter(r["intent"] for r in rows)
    assert set(counts) == set(DEFAULT_INTENTS)
    assert min(counts.values()) >= 15
    assert {r["sentiment"] for r in rows} == {"negative", "neutral", "positive"}
    assert len({r["text"] for r in rows}) == len(rows)


def test_accuracy_report(
    request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    texts = [r["text"] for r in rows]
    gold_intent = [r["intent"] for r in rows]
    gold_sentiment = [r["sentiment"] for r in rows]
    clf = LexicalClassifier(DEFAULT_INTENTS)
    analyses = clf.classify_many(texts)
    pred_intent = [a.intent for a in analyses]
    pred_sentiment = [a.sentiment.value for a in analyses]

    majority_intent = Counter(gold_intent).most_common(1)[0][1] / len(rows)
    majority_sentiment = Counter(gold_sentiment).most_common(1)[0][1] / len(rows)
    figures = {
        "n": len(rows),
        "intent_accuracy": accuracy(gold_intent, pred_intent),
        "intent_macro_f1": macro_f1(gold_intent, pred_intent, DEFAULT_INTENTS),
        "intent_majority_baseline": majority_intent,
        "sentiment_accuracy": accuracy(gold_sentiment, pred_sentiment),
        "sentiment_macro_f1": macro_f1(
            gold_sentiment, pred_sentiment, ["negative", "neutral", "positive"]
        ),
        "sentiment_majority_baseline": majority_sentiment,
        "mean_intent_score": sum(a.intent_score for a in analyses) / len(rows),
        "mean_sentiment_score": sum(a.sentiment_score for a in analyses) / len(rows),
    }
    lines = [
        f"{k:<28} {v:.3f}" if isinstance(v, float) else f"{k:<28} {v}" for k, v in figures.items()
    ]
    for name, value in figures.items():
        record_property(name, value)
    print("\n".join(lines))
    summary = _Summary()
    summary.lines = lines
    if not request.config.pluginmanager.has_plugin("lexical-accuracy-summary"):
        request.config.pluginmanager.register(summary, "lexical-accuracy-summary")

    # Floors only: clearly better than always answering the most common label.
    assert figures["intent_accuracy"] >= 3 * majority_intent
    assert figures["intent_macro_f1"] >= 0.5
    assert figures["sentiment_accuracy"] > majority_sentiment
