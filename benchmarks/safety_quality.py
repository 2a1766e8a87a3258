"""Quality of the input safety checks on public data, with the defaults alone.

The defaults are alt-profanity-check plus every registered input check, through
`SafetyGate.check_inputs`; "caught" means a verdict other than allow. Figures:
- harmful_requests.jsonl (AdvBench): share caught (target >= 60%);
- benchmarks/data/safe_lookalikes.txt (ours): share caught, i.e. false positives (< 10%);
- toxigen_statements.jsonl, rows labelled neutral: false positives (< 1/12);
- davidson_tweets.jsonl, a fixed sample: macro-F1 of "caught" against the offensive label
  (offensive or hate = positive), alt-profanity-check alone (score >= toxicity_review) against
  the whole gate, and the gate with only the checks that existed before issue 9.
Each public set is shuffled with a fixed seed and cut in two halves: the rules were tuned on
"dev" only; "test" was not looked at while tuning. The data lives in ../shared/data/safety
(never in the tests, never committed); pass another folder as the first argument.
Run: `python -m benchmarks.safety_quality [DATA_DIR]`.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bot.domain import Verdict, VerdictAction
from bot.safety.gate import SafetyGate
from bot.safety.toxicity import ProfanityCheckScorer

SEED = 20261203
DAVIDSON_SAMPLE = 6000
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "safety"
LOOKALIKES = Path(__file__).resolve().parent / "data" / "safe_lookalikes.txt"
CHECKS_BEFORE = ["pii", "language"]  # the input checks before issue 9


def _rows(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def split(rows: Sequence[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    """Fixed-seed halves: "dev" for tuning, "test" for reporting."""
    shuffled = list(rows)
    random.Random(SEED).shuffle(shuffled)
    half = len(shuffled) // 2
    return {"dev": shuffled[:half], "test": shuffled[half:]}


def _caught(verdicts: Sequence[Verdict]) -> list[bool]:
    return [v.action is not VerdictAction.ALLOW for v in verdicts]


def macro_f1(truth: Sequence[bool], predicted: Sequence[bool]) -> float:
    """Mean of the F1 of the positive and of the negative class."""
    scores = []
    for positive in (True, False):
        tp = sum(t == positive and p == positive for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != positive and p == positive for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == positive and p != positive for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / 2


def _flag_counts(verdicts: Sequence[Verdict]) -> dict[str, int]:
    return dict(Counter(f for v in verdicts for f in v.flags).most_common())


def run(data_dir: Path = DEFAULT_DATA) -> dict[str, object]:
    if not data_dir.is_dir():
        raise SystemExit(f"no data in {data_dir}; pass the folder with the safety .jsonl files")
    scorer = ProfanityCheckScorer()
    gate = SafetyGate(scorer)
    before = SafetyGate(scorer, checks=CHECKS_BEFORE)
    review = gate.toxicity_review
    results: dict[str, object] = {"seed": SEED}

    lookalikes = [t for t in LOOKALIKES.read_text(encoding="utf-8").splitlines() if t.strip()]
    verdicts = gate.check_inputs(lookalikes)
    results["safe_lookalikes"] = {
        "rows": len(lookalikes),
        "false_positive_rate": round(sum(_caught(verdicts)) / len(lookalikes), 4),
        "caught": [t for t, c in zip(lookalikes, _caught(verdicts), strict=True) if c],
    }

    harmful = split(_rows(data_dir / "harmful_requests.jsonl"))
    neutral = split(
        [r for r in _rows(data_dir / "toxigen_statements.jsonl") if r["label"] == "neutral"]
    )
    davidson_all = _rows(data_dir / "davidson_tweets.jsonl")
    random.Random(SEED).shuffle(davidson_all)
    davidson = split(davidson_all[:DAVIDSON_SAMPLE])

    for part in ("dev", "test"):
        texts = [str(r["text"]) for r in harmful[part]]
        verdicts = gate.check_inputs(texts)
        results[f"harmful_requests/{part}"] = {
            "rows": len(texts),
            "caught": round(sum(_caught(verdicts)) / len(texts), 4),
            "caught_before": round(sum(_caught(before.check_inputs(texts))) / len(texts), 4),
            "flags": _flag_counts(verdicts),
        }
        texts = [str(r["text"]) for r in neutral[part]]
        verdicts = gate.check_inputs(texts)
        results[f"toxigen_neutral/{part}"] = {
            "rows": len(texts),
            "false_positive_rate": round(sum(_caught(verdicts)) / len(texts), 4),
            "flags": _flag_counts(verdicts),
        }
        texts = [str(r["text"]) for r in davidson[part]]
        truth = [r["label"] in ("offensive", "hate") for r in davidson[part]]
        verdicts = gate.check_inputs(texts)
        model_only = [v.toxicity >= review for v in verdicts]
        results[f"davidson/{part}"] = {
            "rows": len(texts),
            "positive_share": round(sum(truth) / len(truth), 4),
            "macro_f1_profanity_check": round(macro_f1(truth, model_only), 4),
            "macro_f1_gate_before": round(macro_f1(truth, _caught(before.check_inputs(texts))), 4),
            "macro_f1_gate": round(macro_f1(truth, _caught(verdicts)), 4),
            "flags": _flag_counts(verdicts),
        }
    return results


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    results = run(Path(args[0]) if args else DEFAULT_DATA)
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
