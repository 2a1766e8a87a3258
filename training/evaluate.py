"""The evaluation gate: a candidate adapter against what serves today, on the same data.

Reply adapters are measured on held-out replies (perplexity of the reply tokens, rendered
exactly as generation renders the prompt) and on a fixed probe set of customer messages
(`training/data/probes.jsonl`): the share of drafts that fall back, and the share the safety
gate blocks. Classifier heads are measured by macro-F1 and macro-recall on held-out labelled
examples. The baseline is the account's active adapter of that kind, or, when there is none,
the base model (replies) or the lexical rules (classifiers). A safety head is also measured by
its false-positive rate: the share of held-out texts labelled with an allowed label (`neither`)
that it would send to review or block. Macro-F1 alone rewards a head that flags everything
written about a group of people, which is what a brand would feel most.

A candidate is promoted only if it beats the baseline by `promote_margin` and does not raise
the blocked share; a non-finite metric (a corrupted adapter) is refused outright. The metrics
of both sides are stored with the candidate, so `adapters show` tells why.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import InputError
from training import registry

if TYPE_CHECKING:
    from bot.accounts import Account, Accounts
    from bot.config import Settings
    from bot.domain import Actor, ReplyStyle
    from bot.nlp.heads import SafetyHeadPolicy
    from bot.nlp.models import ModelHost
    from bot.storage.db import Database
    from training.classifier_data import Example as LabelledExample
    from training.registry import AdapterVersion
    from training.render import Renderer
    from training.rows import Conversation

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
    # Safety heads only: the share of allowed-label texts the head would flag (review/block).
    false_positive_rate: float | None = None

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
    candidate: ClassifierMetrics,
    baseline: ClassifierMetrics,
    margin: float,
    max_false_positive_rate: float = 1.0,
) -> tuple[bool, str]:
    """Promote on macro-F1; a safety head must also keep its false-positive rate at or under
    `max_false_positive_rate` (or the baseline's, if that is higher)."""
    if not candidate.sound:
        return False, "the candidate's scores are not finite: the head is broken"
    if candidate.false_positive_rate is not None:
        allowed = max(max_false_positive_rate, baseline.false_positive_rate or 0.0)
        if candidate.false_positive_rate > allowed:
            return False, (
                f"it flags {candidate.false_positive_rate:.1%} of the held-out texts that should "
                f"pass (at most {allowed:.1%} allowed: safety_max_false_positive_rate)"
            )
    needed = baseline.macro_f1 * (1 + margin)
    if not candidate.macro_f1 > needed:
        return False, (
            f"macro-F1 {candidate.macro_f1:.3f} does not beat {needed:.3f} ({margin:.0%} over "
            f"{baseline.macro_f1:.3f})"
        )
    return True, f"macro-F1 {candidate.macro_f1:.3f} against {baseline.macro_f1:.3f}"


def classifier_metrics(
    truth: Sequence[str],
    predicted: Sequence[str],
    allowed: Collection[str] | None = None,
) -> ClassifierMetrics:
    """Macro-F1 and macro-recall over the labels present in `truth`; with `allowed` (a safety
    head's labels that the gate lets through) also the false-positive rate: the share of texts
    whose true label is allowed but whose predicted label is not."""
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
        false_positive_rate=None
        if allowed is None
        else _false_positives(truth, predicted, allowed),
    )


def _false_positives(
    truth: Sequence[str], predicted: Sequence[str], allowed: Collection[str]
) -> float:
    passing = [p for t, p in zip(truth, predicted, strict=True) if t in allowed]
    return sum(p not in allowed for p in passing) / len(passing) if passing else 0.0


def allowed_safety_labels(verdicts: Mapping[str, str]) -> frozenset[str]:
    """The safety labels the gate lets through (`safety_label_verdicts` saying allow)."""
    return frozenset(label for label, action in verdicts.items() if action == "allow")


def predictions(
    classify_many: Callable[[Sequence[str]], Sequence[Any]],
    task: str,
    texts: Sequence[str],
    safety_head: SafetyHeadPolicy | None = None,
) -> list[str]:
    """The label a classifier gives each text for `task` (intent, sentiment or safety); a
    safety head's label as `safety_head` (its confidence) lets it count in serving."""
    from bot.nlp.heads import SafetyHeadPolicy

    out: list[str] = []
    for analysis in classify_many(texts):
        if task == "intent":
            out.append(str(analysis.intent))
        elif task == "sentiment":
            out.append(str(analysis.sentiment))
        else:
            # Without a safety head nothing names a safety label: the baseline then answers
            # `neither` (the allow label of the offensive-tweets data) for every text, so a
            # head must at least beat always-allow.
            label = (safety_head or SafetyHeadPolicy()).label(analysis)
            out.append(label if label is not None else "neither")
    return out


def metrics_dict(metrics: ReplyMetrics | ClassifierMetrics) -> dict[str, Any]:
    return asdict(metrics)


def labelled_heldout(rows: Sequence[LabelledExample]) -> tuple[list[str], list[str]]:
    """The held-out part of labelled examples: texts and labels."""
    held = [row for row in rows if is_heldout(row.text)]
    return [row.text for row in held], [row.label for row in held]


# --- running the gate ---------------------------------------------------------------------------
# Heavy imports (torch, transformers, the model host) stay inside these functions: the module's
# decision logic above is imported by the CLI and the scheduler, which must start fast.

PROBE_SEED = 1234  # probes are sampled as the account samples, from one fixed seed


def reply_metrics(
    host: ModelHost,
    renderer: Renderer,
    conversations: Sequence[Conversation],
    adapter: str | None,
    style: ReplyStyle,
    gate: Any,
    probes: Sequence[str],
    check_context: Callable[[str], Any] | None = None,
) -> ReplyMetrics:
    """One reply adapter (None: the base model) on the held-out conversations and the probes.
    `check_context(probe)` gives the safety gate the account's rules for each probe's draft."""
    import torch

    from bot.domain import DraftRequest, VerdictAction
    from bot.nlp.generate import ReplyGenerator
    from bot.nlp.models import BASE_ADAPTER
    from training.render import IGNORE_INDEX, conversation_examples

    examples = [
        example
        for conversation in conversations
        if is_heldout(conversation.key)
        for example in conversation_examples(renderer, conversation)
    ]
    nll, tokens = 0.0, 0
    host.set_active_adapter(adapter)
    try:
        with host.lock, torch.inference_mode():
            for example in examples:
                ids = torch.tensor([example.input_ids], device=host.device)
                labels = torch.tensor([example.labels], device=host.device)
                logits = host.model(input_ids=ids).logits[:, :-1].float()
                targets = labels[:, 1:]
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    targets.reshape(-1),
                    ignore_index=IGNORE_INDEX,
                    reduction="sum",
                )
                nll += float(loss)
                tokens += int((targets != IGNORE_INDEX).sum())
    finally:
        host.set_active_adapter(None)
    perplexity = math.exp(nll / tokens) if tokens else math.nan
    seeded = replace(style, seed=PROBE_SEED)
    with ReplyGenerator(host, seeded) as generator:
        drafts = generator.draft_many(
            [
                DraftRequest((), text, style=seeded, adapter=adapter or BASE_ADAPTER)
                for text in probes
            ]
        )
    if check_context is None:
        verdicts = gate.check_drafts([d.text for d in drafts])
    else:
        verdicts = [
            gate.check_draft(d.text, check_context(text))
            for d, text in zip(drafts, probes, strict=True)
        ]
    return ReplyMetrics(
        perplexity=perplexity,
        fallback_rate=sum(d.fallback_used for d in drafts) / max(len(drafts), 1),
        blocked_share=sum(v.action is VerdictAction.BLOCK for v in verdicts) / max(len(drafts), 1),
        heldout=len(examples),
        probes=len(drafts),
    )


def _conversations(
    db: Database, settings: Settings, account: str, candidate: AdapterVersion, data: Path | None
) -> list[Conversation]:
    """The candidate's own data file when it still exists (its held-out part was never trained
    on), else a fresh export of the account."""
    import tempfile

    from training.export import export_account
    from training.rows import read_conversations

    recorded = candidate.config.get("data")
    path = data or (Path(recorded) if isinstance(recorded, str) else None)
    if path is not None and path.is_file():
        return read_conversations(path)
    with tempfile.TemporaryDirectory() as tmp:
        result = export_account(db, settings, account, Path(tmp) / "export")
        return read_conversations(result.files["sft.jsonl"])


def evaluate_reply(
    db: Database,
    settings: Settings,
    account: Account,
    candidate: AdapterVersion,
    *,
    data: Path | None = None,
) -> Verdict:
    from bot.nlp.embedded import choose_model
    from bot.nlp.models import ModelHost
    from bot.service import build_gate
    from training.render import renderer_for

    conversations = _conversations(db, settings, account.name, candidate, data)
    if not any(is_heldout(c.key) for c in conversations):
        raise InputError(
            f"none of the {len(conversations)} conversations falls in the held-out split "
            f"({HELDOUT_SHARE:.0%} by hash); the gate cannot judge {candidate.name} yet. "
            "Moderate more drafts, or pass --data with a larger file"
        )
    baseline = registry.active(db, account.name, "reply")
    host = ModelHost.load(choose_model(settings).ref, device=settings.device)
    host.load_adapter("candidate", str(candidate.path), activate=False)
    if baseline is not None and baseline.name != candidate.name:
        host.load_adapter("baseline", str(baseline.path), activate=False)
    renderer = renderer_for(
        host.tokenizer, host.model.config, account.style, settings.history_turns
    )
    gate, probes = build_gate(settings), probe_messages()
    ran = [
        reply_metrics(
            host,
            renderer,
            conversations,
            name,
            account.style,
            gate,
            probes,
            account.check_context,
        )
        for name in ("candidate", "baseline" if baseline is not None else None)
    ]
    promote, reason = decide_reply(ran[0], ran[1], settings.promote_margin)
    return Verdict(
        candidate=candidate.name,
        baseline=baseline.name if baseline is not None else "base model",
        promote=promote,
        reason=reason,
        candidate_metrics=metrics_dict(ran[0]),
        baseline_metrics=metrics_dict(ran[1]),
    )


def evaluate_classifier(
    db: Database,
    settings: Settings,
    account: Account,
    candidate: AdapterVersion,
    *,
    data: Path | None = None,
) -> Verdict:
    from bot.nlp.heads import load_account_classifier
    from training.classifier_data import read_examples

    task = candidate.kind
    rows = (
        read_examples(data) if data is not None else _exported_labels(db, settings, account, task)
    )
    texts, truth = labelled_heldout(rows)
    if not texts:
        raise InputError(
            f"no held-out {task} examples ({HELDOUT_SHARE:.0%} of {len(rows)} by hash); correct "
            "more labels in the queue or pass --data with a larger labelled file"
        )
    baseline = registry.active(db, account.name, task)
    others = {
        kind: version
        for kind in ("intent", "sentiment", "safety")
        if kind != task and (version := registry.active(db, account.name, kind)) is not None
    }
    theirs = load_account_classifier(
        settings, account, {**others, **({task: baseline} if baseline else {})}
    )
    ours = load_account_classifier(settings, account, {**others, task: candidate})
    from bot.nlp.heads import SafetyHeadPolicy

    allowed = allowed_safety_labels(settings.safety_label_verdicts) if task == "safety" else None
    policy = SafetyHeadPolicy.from_settings(settings)
    base_metrics = classifier_metrics(
        truth, predictions(theirs.classify_many, task, texts, policy), allowed
    )
    cand_metrics = classifier_metrics(
        truth, predictions(ours.classify_many, task, texts, policy), allowed
    )
    promote, reason = decide_classifier(
        cand_metrics,
        base_metrics,
        settings.promote_margin,
        settings.safety_max_false_positive_rate,
    )
    return Verdict(
        candidate=candidate.name,
        baseline=baseline.name if baseline is not None else "lexical rules",
        promote=promote,
        reason=reason,
        candidate_metrics=metrics_dict(cand_metrics),
        baseline_metrics=metrics_dict(base_metrics),
    )


def _exported_labels(
    db: Database, settings: Settings, account: Account, task: str
) -> list[LabelledExample]:
    import tempfile

    from training.classifier_data import read_examples
    from training.export import export_account

    with tempfile.TemporaryDirectory() as tmp:
        result = export_account(db, settings, account.name, Path(tmp) / "export")
        path = result.files.get(f"labels-{task}.jsonl")
        return read_examples(path) if path is not None else []


def evaluate(
    db: Database,
    settings: Settings,
    accounts: Accounts,
    name: str,
    *,
    data: Path | None = None,
    promote: bool = False,
    actor: Actor | None = None,
) -> Verdict:
    """Evaluate candidate `name` against its account's active adapter, store both sides'
    metrics with it, and with `promote` activate it when the gate says so (else reject it)."""
    candidate = registry.get(db, name)
    account = accounts.get(candidate.account)
    runner = evaluate_reply if candidate.kind == "reply" else evaluate_classifier
    verdict = runner(db, settings, account, candidate, data=data)
    registry.record_metrics(
        db,
        name,
        {
            "eval": {
                "baseline": verdict.baseline,
                "promote": verdict.promote,
                "reason": verdict.reason,
                "candidate": verdict.candidate_metrics,
                "baseline_metrics": verdict.baseline_metrics,
            },
            **_headline(verdict.candidate_metrics),
        },
    )
    if promote:
        if verdict.promote:
            registry.promote(db, name, actor or registry.operator("eval-gate"), verdict.reason)
        elif candidate.status == "candidate":
            registry.reject(db, name, verdict.reason)
    return verdict


def _headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "perplexity",
        "fallback_rate",
        "blocked_share",
        "macro_f1",
        "macro_recall",
        "false_positive_rate",
    )
    return {key: metrics[key] for key in keys if metrics.get(key) is not None}
