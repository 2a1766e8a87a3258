"""Trained classifier heads behind the `Classifier` interface, one `HeadClassifier` per account.

A head is a LoRA adapter for sequence classification (see training/train_classifier.py) that
the registry promoted for (account, task), task being intent, sentiment or safety. All heads on
one base model share one backbone in the process (bot/nlp/head_backbone.py); each call switches
to the task's adapter, runs the texts in batches and turns logits into probabilities with the
head's fitted temperature, softmax(logits / T). A task without a head keeps the lexical rules'
answer. A safety head's probabilities go into `Analysis.scores` as "safety:<label>"; the gate
maps the top label to allow / review / block with `safety_verdict`, once its probability reaches
`safety_head_confidence` (`SafetyHeadPolicy`).

This module imports no torch: with no head, `load_account_classifier` returns the lexical
classifier and the light `autoreply classify` path stays light.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.domain import SAFETY_LABEL_VERDICTS, Analysis, Sentiment, Verdict, VerdictAction
from bot.errors import ModelLoadError
from bot.nlp.classify import Classifier, LexicalClassifier, softmax
from bot.safety.identity_terms import TOXIC_IDENTITY

if TYPE_CHECKING:
    from bot.accounts import Account
    from bot.config import Settings
    from bot.nlp.head_backbone import Backbone

TASKS = ("intent", "sentiment", "safety")
HEAD_FILE = "head.json"  # task, temperature, max_length, base model
LABELS_FILE = "labels.json"  # id2label
SAFETY_PREFIX = "safety:"
MODEL_VERSION_MAX = 128  # analyses.model_version is VARCHAR(128)
# Rows per forward pass. On 2 CPU cores a 135M backbone does 18-21 lines/s with 8-16 rows and
# 14 with 64 (benchmarks/heads_bench.py): small batches stay in cache and pad less.
BATCH = 16


class HeadRef(Protocol):
    """Where a head lives: a registry `AdapterVersion` has these two attributes."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> Path: ...


# A registry version, or the (name, path) pair `active_names` polls.
HeadSource = HeadRef | tuple[str, str]


@dataclass(frozen=True, slots=True)
class HeadSpec:
    """What serving needs to know about a trained head, read from its directory."""

    name: str
    task: str
    path: Path
    labels: tuple[str, ...]
    temperature: float
    max_length: int
    base_model: str


def read_head(name: str, path: Path) -> HeadSpec:
    """The spec of the head saved in `path` (head.json and labels.json)."""
    try:
        meta = json.loads((path / HEAD_FILE).read_text(encoding="utf-8"))
        id2label = json.loads((path / LABELS_FILE).read_text(encoding="utf-8"))
        labels = tuple(str(id2label[str(i)]) for i in range(len(id2label)))
        return HeadSpec(
            name=name,
            task=str(meta["task"]),
            path=path,
            labels=labels,
            temperature=float(meta["temperature"]),
            max_length=int(meta["max_length"]),
            base_model=str(meta["base_model"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"classifier head {name} at {path} is incomplete ({exc}); train it again with "
            "`autoreply train classifier` or roll it back with `autoreply adapters rollback`"
        ) from exc


def _source(source: HeadSource) -> tuple[str, Path]:
    if isinstance(source, tuple):
        return source[0], Path(source[1])
    return source.name, Path(source.path)


def heads_by_account(
    active: Mapping[tuple[str, str], tuple[str, str]],
) -> dict[str, dict[str, tuple[str, str]]]:
    """Group the registry's active adapters ((account, kind) -> (name, path)) into each
    account's classifier heads, task -> (name, path). Reply adapters are left out."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for (account, kind), head in active.items():
        if kind in TASKS:
            found.setdefault(account, {})[kind] = head
    return found


def safety_verdict(label: str, verdicts: Mapping[str, str]) -> VerdictAction:
    """What the gate does with a safety head's label (`safety_label_verdicts`); a label the
    setting does not name goes to review, as does a misspelt action."""
    try:
        return VerdictAction(verdicts.get(label, VerdictAction.REVIEW.value))
    except ValueError:
        return VerdictAction.REVIEW


def safety_label(analysis: Analysis) -> tuple[str, float] | None:
    """The safety head's most probable label and its probability; None without a safety head."""
    scores = {
        k[len(SAFETY_PREFIX) :]: v
        for k, v in analysis.scores.items()
        if k.startswith(SAFETY_PREFIX)
    }
    if not scores:
        return None
    label = max(scores, key=scores.__getitem__)
    return label, scores[label]


_SEVERITY = {VerdictAction.ALLOW: 0, VerdictAction.REVIEW: 1, VerdictAction.BLOCK: 2}


@dataclass(frozen=True, slots=True)
class SafetyHeadPolicy:
    """How a promoted safety head's answer changes the gate's verdict.

    `verdicts` maps its labels to allow / review / block (`safety_label_verdicts`). A label that
    asks for more than allow counts only at `confidence` or more (`safety_head_confidence`):
    below it the head is unsure, and on neutral statements about groups of people an unsure
    head is mostly wrong (docs/SAFETY.md, the safety head's thresholds).
    """

    verdicts: Mapping[str, str] = field(default_factory=lambda: dict(SAFETY_LABEL_VERDICTS))
    confidence: float = 0.85

    @classmethod
    def from_settings(cls, settings: Settings) -> SafetyHeadPolicy:
        return cls(dict(settings.safety_label_verdicts), settings.safety_head_confidence)

    def flagging_label(self, analysis: Analysis) -> str | None:
        """The head's label when it asks for more than allow and is sure enough; else None
        (also without a safety head)."""
        found = safety_label(analysis)
        if found is None or found[1] < self.confidence:
            return None
        return None if safety_verdict(found[0], self.verdicts) is VerdictAction.ALLOW else found[0]

    def label(self, analysis: Analysis) -> str | None:
        """The label the head answers with under this policy: its top label when that is
        allowed or sure enough, else its most probable allowed label ("neither" when its
        labels name none); None without a safety head."""
        found = safety_label(analysis)
        if found is None:
            return None
        if self.flagging_label(analysis) is not None:
            return found[0]
        allowed = {
            k[len(SAFETY_PREFIX) :]: v
            for k, v in analysis.scores.items()
            if k.startswith(SAFETY_PREFIX)
            and safety_verdict(k[len(SAFETY_PREFIX) :], self.verdicts) is VerdictAction.ALLOW
        }
        return max(allowed, key=allowed.__getitem__) if allowed else "neither"


def with_safety_head(verdict: Verdict, analysis: Analysis, policy: SafetyHeadPolicy) -> Verdict:
    """The gate's verdict as a promoted safety head changes it:
    - a sure head's label that asks for more than allow makes the verdict at least that strict,
      with a "safety_<label>" flag;
    - when the only flag is `toxic_identity` (the profanity model reacting to a word for a
      group of people, bot/safety/identity_terms.py) and the head does not flag the text, the
      head's judgement stands and the text is allowed: telling hate from talk about a group is
      what the head was trained for, and what the profanity model cannot do.
    Otherwise the verdict stays as it is; the head never clears any other flag."""
    if safety_label(analysis) is None:
        return verdict
    label = policy.flagging_label(analysis)
    if label is None:
        if verdict.flags == (TOXIC_IDENTITY,):
            return replace(verdict, action=VerdictAction.ALLOW, flags=())
        return verdict
    action = safety_verdict(label, policy.verdicts)
    strictest = max(verdict.action, action, key=_SEVERITY.__getitem__)
    return replace(verdict, action=strictest, flags=(*verdict.flags, f"safety_{label}"))


def softmax_t(logits: Sequence[float], temperature: float) -> list[float]:
    """softmax(logits / T): the head's calibrated probabilities."""
    return softmax([x / temperature for x in logits])


@dataclass(frozen=True, slots=True)
class LoadedHead:
    spec: HeadSpec
    backbone: Backbone

    def probabilities(self, texts: Sequence[str], batch_size: int) -> list[list[float]]:
        logits = self.backbone.logits(
            self.spec.name, texts, max_length=self.spec.max_length, batch_size=batch_size
        )
        return [softmax_t(row, self.spec.temperature) for row in logits.tolist()]


class HeadClassifier(Classifier):
    """Heads where the account has them, the lexical rules for the other tasks."""

    def __init__(
        self,
        heads: Mapping[str, LoadedHead],
        fallback: LexicalClassifier,
        *,
        batch_size: int = BATCH,
    ) -> None:
        unknown = sorted(set(heads) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown head tasks {unknown}; use {', '.join(TASKS)}")
        self.heads = dict(heads)
        self.fallback = fallback
        self.batch_size = batch_size
        parts = [
            h.spec.name for t, h in sorted(self.heads.items(), key=lambda i: TASKS.index(i[0]))
        ]
        parts += [f"lexical-{t}" for t in ("intent", "sentiment") if t not in self.heads]
        self.name = ("heads:" + "+".join(parts))[:MODEL_VERSION_MAX]

    @property
    def backbones(self) -> list[Backbone]:
        """The distinct backbones in use (one when every head shares a base model)."""
        return list({id(h.backbone): h.backbone for h in self.heads.values()}.values())

    def classify_many(self, texts: Sequence[str]) -> list[Analysis]:
        if not texts:
            return []
        rules_needed = "intent" not in self.heads or "sentiment" not in self.heads
        analyses = self.fallback.classify_many(texts) if rules_needed else None
        probs = self._probabilities(texts)
        return [self._one(i, analyses, probs) for i in range(len(texts))]

    def _probabilities(self, texts: Sequence[str]) -> dict[str, list[list[float]]]:
        """Each head's calibrated probabilities; heads on one backbone with the same max
        length go through it together, so they share the blocks below their LoRA layers."""
        groups: dict[tuple[int, int], list[str]] = {}
        for task, head in self.heads.items():
            groups.setdefault((id(head.backbone), head.spec.max_length), []).append(task)
        probs: dict[str, list[list[float]]] = {}
        for (_, max_length), tasks in groups.items():
            specs = [self.heads[task].spec for task in tasks]
            logits = self.heads[tasks[0]].backbone.logits_many(
                [spec.name for spec in specs],
                texts,
                max_length=max_length,
                batch_size=self.batch_size,
            )
            for task, spec in zip(tasks, specs, strict=True):
                rows = logits[spec.name].tolist()
                probs[task] = [softmax_t(row, spec.temperature) for row in rows]
        return {task: probs[task] for task in self.heads}

    def _one(
        self, i: int, rules: list[Analysis] | None, probs: Mapping[str, list[list[float]]]
    ) -> Analysis:
        scores: dict[str, float] = {}
        top: dict[str, tuple[str, float]] = {}
        for task, rows in probs.items():
            labels = self.heads[task].spec.labels
            scores.update({f"{task}:{label}": p for label, p in zip(labels, rows[i], strict=True)})
            best = max(range(len(labels)), key=rows[i].__getitem__)
            top[task] = (labels[best], rows[i][best])
        if rules is not None:  # the rules answer the tasks without a head
            rule = rules[i]
            top.setdefault("intent", (rule.intent, rule.intent_score))
            top.setdefault("sentiment", (rule.sentiment.value, rule.sentiment_score))
            for task in ("intent", "sentiment"):
                if task not in probs:
                    scores.update(
                        {k: v for k, v in rule.scores.items() if k.startswith(f"{task}:")}
                    )
        return Analysis(
            intent=top["intent"][0],
            intent_score=top["intent"][1],
            sentiment=Sentiment(top["sentiment"][0]),
            sentiment_score=top["sentiment"][1],
            scores=scores,
            model=self.name,
        )

    def with_toxicity(
        self, analyses: Sequence[Analysis], toxicities: Sequence[float]
    ) -> list[Analysis]:
        """Rule intents get the toxicity boost as before; a trained intent head decides alone."""
        if "intent" in self.heads:
            return list(analyses)
        return self.fallback.with_toxicity(analyses, toxicities)


def load_heads(
    settings: Settings, heads: Mapping[str, HeadSource], intent_labels: Sequence[str]
) -> dict[str, LoadedHead]:
    """Each task's head on its shared backbone. Cheap when the backbone is cached and the
    heads are loaded already (a registry poll that found a change calls this again)."""
    from bot.nlp.head_backbone import shared_backbone

    loaded: dict[str, LoadedHead] = {}
    for task, source in heads.items():
        spec = read_head(*_source(source))
        _check_spec(spec, task, intent_labels)
        backbone = shared_backbone(spec.base_model, settings.device)
        backbone.add_head(spec.name, spec.path)
        loaded[task] = LoadedHead(spec, backbone)
    return loaded


def _check_spec(spec: HeadSpec, task: str, intent_labels: Sequence[str]) -> None:
    if spec.task != task:
        raise ModelLoadError(
            f"{spec.name} is a {spec.task} head but is active as the {task} head; roll it back "
            "with `autoreply adapters rollback`"
        )
    allowed = {"intent": set(intent_labels), "sentiment": {s.value for s in Sentiment}}.get(task)
    if allowed is not None and not set(spec.labels) <= allowed:
        extra = ", ".join(sorted(set(spec.labels) - allowed))
        raise ModelLoadError(
            f"{spec.name} predicts {task} labels the account does not have ({extra}); add them "
            "to its intent_labels or train the head again on the current labels"
        )


def load_account_classifier(
    settings: Settings, account: Account, heads: Mapping[str, HeadSource]
) -> Classifier:
    """`account`'s classifier: the lexical rules when it has no head (no torch import), else a
    `HeadClassifier` on the given heads (task -> registry version or (name, path))."""
    rules = LexicalClassifier(account.intent_labels)
    if not heads:
        return rules
    return HeadClassifier(load_heads(settings, heads, account.intent_labels), rules)
