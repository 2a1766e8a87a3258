"""The safety gate with and without a trained safety head, on held-out rows per source.

`python -m benchmarks.safety_head_eval --data safety_heldout.jsonl --head DIR
[--lookalikes FILE]` reads the rows `benchmarks.safety_splits` holds out (`text`, `label`,
`source`) and prints, for alt-profanity-check alone (toxicity at or above the review
threshold), the default gate (`SafetyGate.check_inputs`), and the gate made stricter by the
head's label (`bot.nlp.heads.with_safety_head`, the pipeline's rule, with the default
`safety_label_verdicts`), and with `--curve 0.5,0.8` the same at other confidences:

* the share caught (verdict not allow) of harmful requests and of ToxiGen's implicit hate;
* the share flagged of ToxiGen's neutral statements about minorities, of the held-out third of
  our own neutral statements about groups, of ordinary airline tweets, and of the safe
  look-alikes in `--lookalikes` (one message a line);
* on the held-out third of our stereotype pairs, the share of the hateful halves caught and of
  the rejecting halves flagged;
* on the Davidson tweets, the macro-F1 of "verdict is not allow" against "offensive or hate".

Used for the figures in docs/SAFETY.md. Needs the public data, so never part of the tests.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.config import DEFAULT_INTENTS, Settings
from bot.domain import Analysis, Verdict, VerdictAction
from bot.nlp.classify import LexicalClassifier
from bot.nlp.heads import HeadClassifier, SafetyHeadPolicy, load_heads, with_safety_head
from bot.safety.gate import SafetyGate

Flagged = Callable[[Sequence[str]], list[bool]]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _macro_f1(gold: Sequence[bool], flagged: Sequence[bool]) -> float:
    scores = []
    for positive in (True, False):
        tp = sum(g == positive and f == positive for g, f in zip(gold, flagged, strict=True))
        fp = sum(g != positive and f == positive for g, f in zip(gold, flagged, strict=True))
        fn = sum(g == positive and f != positive for g, f in zip(gold, flagged, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / 2


def _share(values: Sequence[bool]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def measure(
    rows: Sequence[dict[str, str]], lookalikes: Sequence[str], flagged: Flagged
) -> dict[str, float | None]:
    """The figures above for one way of flagging."""
    texts = [r["text"] for r in rows]
    marks = flagged(texts)
    by: dict[tuple[str, str], list[bool]] = {}
    for row, mark in zip(rows, marks, strict=True):
        by.setdefault((row["source"], row["label"]), []).append(mark)
    davidson = [(r["label"] != "neither", m) for r, m in zip(rows, marks, strict=True)]
    davidson = [d for d, r in zip(davidson, rows, strict=True) if r["source"] == "davidson"]
    return {
        "harmful_caught": _share(by.get(("harmful_requests", "unsafe_request"), [])),
        "implicit_hate_caught": _share(by.get(("toxigen", "hate"), [])),
        "neutral_minority_flagged": _share(by.get(("toxigen", "neither"), [])),
        "airline_flagged": _share(by.get(("airline", "neither"), [])),
        "written_neutral_flagged": _share(by.get(("neutral_written", "neither"), [])),
        "written_hate_caught": _share(by.get(("pairs_written", "hate"), [])),
        "written_rejections_flagged": _share(by.get(("pairs_written", "neither"), [])),
        "lookalikes_flagged": _share(flagged(lookalikes)) if lookalikes else None,
        "davidson_macro_f1": round(_macro_f1([g for g, _ in davidson], [f for _, f in davidson]), 3)
        if davidson
        else None,
    }


def evaluate(
    data: Path, head: Path | None, lookalikes: Path | None, curve: Sequence[float] = ()
) -> dict[str, Any]:
    settings = Settings(device="cpu")
    rows = _rows(data)
    extra = (
        [line.strip() for line in lookalikes.read_text(encoding="utf-8").splitlines()]
        if lookalikes
        else []
    )
    extra = [line for line in extra if line and not line.startswith("#")]
    gate = SafetyGate.from_settings(settings)

    def profanity_alone(texts: Sequence[str]) -> list[bool]:
        scores = gate.toxicity.submit(texts).result()
        return [s >= settings.toxicity_review for s in scores]

    def whole_gate(texts: Sequence[str]) -> list[bool]:
        return [v.action is not VerdictAction.ALLOW for v in gate.check_inputs(texts)]

    results: dict[str, Any] = {
        "rows": len(rows),
        "alt-profanity-check alone": measure(rows, extra, profanity_alone),
        "gate (defaults)": measure(rows, extra, whole_gate),
    }
    if head is not None:
        rules = LexicalClassifier(DEFAULT_INTENTS)
        loaded = load_heads(settings, {"safety": (head.name, str(head))}, DEFAULT_INTENTS)
        classifier = HeadClassifier(loaded, rules)
        judged: dict[tuple[str, ...], tuple[list[Verdict], list[Analysis]]] = {}

        def gate_and_head(policy: SafetyHeadPolicy) -> Flagged:
            def flagged(texts: Sequence[str]) -> list[bool]:
                key = tuple(texts)  # the gate and the head run once per text set
                if key not in judged:
                    judged[key] = (gate.check_inputs(texts), classifier.classify_many(texts))
                verdicts, analyses = judged[key]
                return [
                    with_safety_head(v, a, policy).action is not VerdictAction.ALLOW
                    for v, a in zip(verdicts, analyses, strict=True)
                ]

            return flagged

        policy = SafetyHeadPolicy.from_settings(settings)
        results["gate + safety head"] = measure(rows, extra, gate_and_head(policy))
        for level in curve:
            at = SafetyHeadPolicy(policy.verdicts, level)
            results[f"gate + safety head at confidence {level}"] = measure(
                rows, extra, gate_and_head(at)
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="safety_heldout.jsonl")
    parser.add_argument("--head", type=Path, help="a safety head's directory")
    parser.add_argument("--lookalikes", type=Path, help="safe look-alike messages, one a line")
    parser.add_argument(
        "--curve",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[],
        help="also measure the head at these confidences, e.g. 0.5,0.7,0.8",
    )
    args = parser.parse_args()
    print(json.dumps(evaluate(args.data, args.head, args.lookalikes, args.curve), indent=2))


if __name__ == "__main__":
    main()
