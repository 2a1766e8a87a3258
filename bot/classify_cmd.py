"""`autoreply classify`: one message per input line in, one JSON row per line out.

Start-up is the cost to beat (10,000 lines in <= 2 s including Python start): the toxicity model
loads in a worker process (~1.2 s) while this process runs VADER, the intent rules and the text
checks for every batch it can read ahead. Keep this module's imports light: no torch,
transformers, SQLAlchemy or scikit-learn here.
"""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from itertools import islice
from typing import BinaryIO, TextIO

from bot.domain import Analysis
from bot.nlp.classify import LexicalClassifier
from bot.safety.gate import SafetyGate
from bot.safety.toxicity import ProfanityCheckWorker, ToxicityScorer

# Batches held while the toxicity model is still loading; bounds memory on endless input
# (16 x 2,048 lines) while letting 10,000+ lines be classified during the model load.
MAX_AHEAD = 16


@dataclass(slots=True)
class _Batch:
    analyses: list[Analysis]
    flags: list[tuple[str, ...]]
    toxicity: Future[list[float]]


def read_lines(source: BinaryIO) -> Iterator[str]:
    """Lines without their trailing \\n or \\r\\n; invalid UTF-8 becomes U+FFFD."""
    for raw in source:
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        yield raw.decode("utf-8", errors="replace")


def _row(analysis: Analysis, verdict_action: str, toxicity: float, flags: Sequence[str]) -> str:
    return json.dumps(
        {
            "intent": analysis.intent,
            "intent_score": round(analysis.intent_score, 4),
            "sentiment": analysis.sentiment.value,
            "sentiment_score": round(analysis.sentiment_score, 4),
            "safety": {
                "verdict": verdict_action,
                "toxicity": round(toxicity, 4),
                "flags": list(flags),
            },
        },
        ensure_ascii=False,
    )


def run_classify(
    source: BinaryIO,
    out: TextIO,
    *,
    intent_labels: Sequence[str],
    batch_size: int = 2048,
    toxicity_review: float = 0.5,
    toxicity_block: float = 0.85,
    toxicity: ToxicityScorer | None = None,
) -> int:
    """Classify every line of `source` into JSON lines on `out`; returns the number of rows.

    Output is in input order and flushed after each batch; a batch is written once its
    toxicity scores are in and the next batch has been read (or the input ended). `toxicity`
    defaults to a fresh `ProfanityCheckWorker`, closed on return; pass one started earlier to
    overlap the model load with your own start-up, or any `ToxicityScorer` (tests pass fakes).
    A scorer passed in is left open.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    scorers: AbstractContextManager[ToxicityScorer] = (
        ProfanityCheckWorker.start() if toxicity is None else nullcontext(toxicity)
    )
    with scorers as scorer:
        classifier = LexicalClassifier(intent_labels)
        gate = SafetyGate(scorer, toxicity_review=toxicity_review, toxicity_block=toxicity_block)
        rows = 0
        ahead: deque[_Batch] = deque()

        def emit(batch: _Batch) -> None:
            scores = batch.toxicity.result()
            analyses = classifier.with_toxicity(batch.analyses, scores)
            lines = []
            for analysis, tox, flags in zip(analyses, scores, batch.flags, strict=True):
                verdict = gate.decide(tox, flags)
                lines.append(_row(analysis, verdict.action.value, tox, verdict.flags))
            out.write("\n".join(lines) + "\n")
            out.flush()

        lines_iter = read_lines(source)
        while texts := list(islice(lines_iter, batch_size)):
            rows += len(texts)
            pending = scorer.submit(texts)  # first, so the worker never waits on us
            ahead.append(
                _Batch(classifier.classify_many(texts), gate.flags("input", texts), pending)
            )
            while ahead and (ahead[0].toxicity.done() or len(ahead) > MAX_AHEAD):
                emit(ahead.popleft())
        while ahead:
            emit(ahead.popleft())
        return rows


def _open(path: str) -> AbstractContextManager[BinaryIO]:
    if path == "-":
        return nullcontext(sys.stdin.buffer)
    try:
        return open(path, "rb")
    except OSError as exc:
        from bot.errors import InputError

        raise InputError(f"cannot read {path}: {exc.strerror}; check the path") from exc


def classify_file(path: str | None, out: TextIO | None = None, account: str | None = None) -> int:
    """The whole `autoreply classify [FILE]` command: settings, worker, I/O. Returns rows.

    `account` picks whose intent labels to use (None: the default account's).

    The toxicity worker starts before the settings are read so that their import and
    validation (~0.15 s) also overlap the model load. Raises `AutoreplyError`s for the CLI to
    print.
    """
    with ProfanityCheckWorker.start() as worker:
        from bot.accounts import load_accounts
        from bot.config import load_settings

        settings = load_settings()
        labels = load_accounts(settings).get(account).intent_labels
        with _open(path or "-") as source:
            return run_classify(
                source,
                sys.stdout if out is None else out,
                intent_labels=labels,
                toxicity_review=settings.toxicity_review,
                toxicity_block=settings.toxicity_block,
                toxicity=worker,
            )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bot.classify_cmd [FILE]`: the CLI command without Typer."""
    from bot.errors import AutoreplyError

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print("usage: python -m bot.classify_cmd [FILE]   (stdin when FILE is absent or -)")
        return 2
    try:
        classify_file(args[0] if args else None)
    except AutoreplyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix filters do, and keep
        # Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
