"""Intent and sentiment classifiers behind one small interface.

`LexicalClassifier` needs no model download and starts in ~40 ms: VADER for sentiment and
weighted regex rules (`bot.nlp.intent_rules`) for intent. Trained heads plug in later by
subclassing `Classifier`. Nothing here may import torch or transformers: `autoreply classify`
must stay fast.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from bot.domain import Analysis, Sentiment
from bot.nlp.intent_rules import OTHER, CompiledRules, IntentRules

if TYPE_CHECKING:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# VADER's documented cut-offs on the compound score.
POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05
_SENTIMENT_KEYS = {label: f"sentiment:{label.value}" for label in Sentiment}


class Classifier(ABC):
    """Turns texts into `Analysis` rows.

    Override `classify_many`. Override `with_toxicity` if toxicity scores (which arrive later,
    from the safety gate) should change the intent; the default ignores them.
    """

    name: str

    @abstractmethod
    def classify_many(self, texts: Sequence[str]) -> list[Analysis]:
        """One Analysis per text, in order."""

    def classify(self, text: str) -> Analysis:
        return self.classify_many([text])[0]

    def with_toxicity(
        self, analyses: Sequence[Analysis], toxicities: Sequence[float]
    ) -> list[Analysis]:
        return list(analyses)


def softmax(logits: Sequence[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def sentiment_distribution(vader: dict[str, float]) -> tuple[Sentiment, dict[Sentiment, float]]:
    """Label from the compound score; a distribution whose largest mass is that label.

    The label's probability is 0.5 + 0.45 * confidence, so it is always the argmax and never
    claims more than 0.95 (a lexicon is never certain):
    - positive/negative: confidence = tanh(distance of the compound past the cut-off / 0.3),
      so a compound of 0.3 gives ~0.84 and 0.8 gives ~0.99 of the way to the cap;
    - neutral: confidence = VADER's neutral proportion * how far the compound is from both
      cut-offs, so "where is my order" (no polar words) is confidently neutral while balanced
      praise and blame is not.
    The remaining mass goes to the other two labels in proportion to VADER's pos/neu/neg
    proportions (smoothed, so none is exactly 0).
    """
    compound = vader["compound"]
    if compound >= POSITIVE_AT:
        label = Sentiment.POSITIVE
        confidence = math.tanh((compound - POSITIVE_AT) / 0.3)
    elif compound <= NEGATIVE_AT:
        label = Sentiment.NEGATIVE
        confidence = math.tanh((NEGATIVE_AT - compound) / 0.3)
    else:
        label = Sentiment.NEUTRAL
        confidence = vader["neu"] * (POSITIVE_AT - abs(compound)) / POSITIVE_AT
    chosen = 0.5 + 0.45 * confidence
    share = {
        Sentiment.NEGATIVE: vader["neg"] + 0.05,
        Sentiment.NEUTRAL: vader["neu"] + 0.05,
        Sentiment.POSITIVE: vader["pos"] + 0.05,
    }
    rest = sum(v for k, v in share.items() if k != label)
    probs = {k: chosen if k == label else (1.0 - chosen) * share[k] / rest for k in Sentiment}
    return label, probs


class LexicalClassifier(Classifier):
    """VADER sentiment plus weighted intent rules over a configurable label set.

    `intent_labels` must contain "other". Labels the rules do not know get no evidence; rules of
    labels not in the set are ignored, which equals dropping those labels from the softmax and
    renormalising the rest. `toxicity_weight` is the extra abuse logit at toxicity 1.0 (see
    `with_toxicity`).
    """

    name = "lexical-v1"

    def __init__(
        self,
        intent_labels: Sequence[str],
        rules: IntentRules | None = None,
        *,
        toxicity_weight: float = 3.0,
    ) -> None:
        labels = tuple(intent_labels)
        if OTHER not in labels:
            raise ValueError(f"intent_labels {labels} must include 'other', the fallback label")
        if len(set(labels)) != len(labels):
            raise ValueError(f"intent_labels {labels} has duplicates; list each label once")
        self.intent_labels = labels
        self._intent_keys = [f"intent:{label}" for label in labels]
        self._intent_keys = [f"intent:{label}" for label in labels]
        self._rules: CompiledRules = (rules or IntentRules()).compile(labels)
        self.toxicity_weight = toxicity_weight
        self._vader: SentimentIntensityAnalyzer | None = None

    def _analyzer(self) -> SentimentIntensityAnalyzer:
        # Loaded on first use so constructing a classifier stays free of file I/O.
        if self._vader is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            self._vader = SentimentIntensityAnalyzer()
        return self._vader

    def classify_many(self, texts: Sequence[str]) -> list[Analysis]:
        vader = self._analyzer()
        return [self._one(text, vader.polarity_scores(text)) for text in texts]

    def _one(self, text: str, vader: dict[str, float]) -> Analysis:
        sentiment, sent_probs = sentiment_distribution(vader)
        intent_probs = softmax(self._rules.logits(text, vader["compound"]))
        best = max(range(len(intent_probs)), key=intent_probs.__getitem__)
        scores = dict(zip(self._intent_keys, intent_probs, strict=True))
        scores.update({_SENTIMENT_KEYS[lab]: p for lab, p in sent_probs.items()})
        return Analysis(
            intent=self.intent_labels[best],
            intent_score=intent_probs[best],
            sentiment=sentiment,
            sentiment_score=sent_probs[sentiment],
            scores=scores,
            model=self.name,
        )

    def with_toxicity(
        self, analyses: Sequence[Analysis], toxicities: Sequence[float]
    ) -> list[Analysis]:
        """Raise "abuse" for toxic texts: its logit gains `toxicity_weight * (2t - 1)` for t > 0.5.

        Adding d to one logit of a softmax multiplies that probability by e^d before
        renormalising, so this works from the stored probabilities alone and can run after
        classification, once the (slower) toxicity model has answered.
        """
        if "abuse" not in self.intent_labels:
            return list(analyses)
        out = []
        for analysis, tox in zip(analyses, toxicities, strict=True):
            boost = self.toxicity_weight * max(0.0, 2.0 * tox - 1.0)
            if boost == 0.0:
                out.append(analysis)
                continue
            intents = {k: v for k, v in analysis.scores.items() if k.startswith("intent:")}
            intents["intent:abuse"] *= math.exp(boost)
            total = sum(intents.values())
            intents = {k: v / total for k, v in intents.items()}
            best = max(intents, key=intents.__getitem__)
            out.append(
                replace(
                    analysis,
                    intent=best.removeprefix("intent:"),
                    intent_score=intents[best],
                    scores={**analysis.scores, **intents},
                )
            )
        return out
