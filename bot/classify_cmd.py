"""`autoreply classify`: one message per input line in, one JSON row per line out.

Start-up is the cost to beat (10,000 lines in <= 2 s including Python start): the toxicity model
loads in a worker process (~1.2 s) while this process runs VADER, the intent rules and the text
checks for every batch it can read ahead. Keep this module's imports light: no torch,
transformers, SQLAlchemy or scikit-learn here.

An account with promoted classifier heads is classified by them (bot/nlp/heads.py); only then
are the database, torch and the backbone loaded. Whether to look is decided from the adapters
directory first: without a head directory for the account, the registry is not even read.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from bot.domain import Analysis, Verdict
from bot.nlp.classify import Classifier, LexicalClassifier
from bot.nlp.heads import SafetyHeadPolicy
from bot.safety.context import NO_CONTEXT, CheckContext
from bot.safety.gate import SafetyGate
from bot.safety.toxicity import ProfanityCheckWorker, ToxicityScorer

if TYPE_CHECKING:
    from bot.accounts import Account
    from bot.config import Settings

HEAD_KINDS = ("intent", "sentiment", "safety")

# Batches held while the toxicity model is still loading; bounds memory on endless input
# (16 x 2,048 lines) while letting 10,000+ lines be classified during the model load.
MAX_AHEAD = 16


@dataclass(slots=True)
class _Batch:
    texts: list[str]
    analyses: list[Analysis]
    flags: list[tuple[str, ...]]
    toxicity: Future[list[float]]


def read_lines(source: BinaryIO) -> Iterator[str]:
    """Lines without their trailing \\n or \\r\\n; invalid UTF-8 becomes U+FFFD."""
    for raw in source:
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        yield raw.decode("utf-8", errors="replace")


def _row(analysis: Analysis, verdict: Verdict, head: tuple[str, float] | None = None) -> str:
    """One output line; `head` is a safety head's (label, probability), when there is one."""
    safety: dict[str, Any] = {
        "verdict": verdict.action.value,
        "toxicity": round(verdict.toxicity, 4),
        "flags": list(verdict.flags),
    }
    if head is not None:
        safety.update(label=head[0], label_score=round(head[1], 4))
    return json.dumps(
        {
            "intent": analysis.intent,
            "intent_score": round(analysis.intent_score, 4),
            "sentiment": analysis.sentiment.value,
            "sentiment_score": round(analysis.sentiment_score, 4),
            "safety": safety,
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
    classifier: Classifier | None = None,
    safety_head: SafetyHeadPolicy | None = None,
    context: CheckContext = NO_CONTEXT,
) -> int:
    """Classify every line of `source` into JSON lines on `out`; returns the number of rows.

    `classifier` defaults to the lexical rules over `intent_labels` (an account's
    `HeadClassifier` replaces it); `safety_head` says how a safety head's answer changes the
    verdict (bot.nlp.heads.with_safety_head). `context` carries the account's
    safety rules (its toxicity thresholds override the two above where it sets them).

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
        classify = classifier if classifier is not None else LexicalClassifier(intent_labels)
        gate = SafetyGate(scorer, toxicity_review=toxicity_review, toxicity_block=toxicity_block)
        rows = 0
        ahead: deque[_Batch] = deque()

        def emit(batch: _Batch) -> None:
            scores = batch.toxicity.result()
            analyses = classify.with_toxicity(batch.analyses, scores)
            blind = gate.group_blind_scores(batch.texts, scores, context)
            lines = []
            for analysis, tox, flags, without_groups in zip(
                analyses, scores, batch.flags, blind, strict=True
            ):
                verdict = gate.decide(tox, flags, context, without_groups=without_groups)
                head = None
                if safety_head is not None:
                    from bot.nlp.heads import safety_label, with_safety_head

                    head = safety_label(analysis)
                    verdict = with_safety_head(verdict, analysis, safety_head)
                lines.append(_row(analysis, verdict, head))
            out.write("\n".join(lines) + "\n")
            out.flush()

        lines_iter = read_lines(source)
        while texts := list(islice(lines_iter, batch_size)):
            rows += len(texts)
            pending = scorer.submit(texts)  # first, so the worker never waits on us
            ahead.append(
                _Batch(
                    texts,
                    classify.classify_many(texts),
                    gate.flags("input", texts, context),
                    pending,
                )
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


def classify_file(
    path: str | None, out: TextIO | None = None, account: str | None = None, lexical: bool = False
) -> int:
    """The whole `autoreply classify [FILE]` command: settings, worker, I/O. Returns rows.

    `account` picks whose intent labels and promoted heads to use (None: the default
    account's); `lexical` ignores heads and uses the rules.

    The toxicity worker starts before the settings are read so that their import and
    validation (~0.15 s) also overlap the model load. Raises `AutoreplyError`s for the CLI to
    print.
    """
    with ProfanityCheckWorker.start() as worker:
        from bot.accounts import load_accounts
        from bot.config import load_settings

        settings = load_settings()
        target = load_accounts(settings).get(account)
        classifier = None if lexical else account_classifier(settings, target)
        with _open(path or "-") as source:
            return run_classify(
                source,
                sys.stdout if out is None else out,
                intent_labels=target.intent_labels,
                toxicity_review=settings.toxicity_review,
                toxicity_block=settings.toxicity_block,
                toxicity=worker,
                classifier=classifier,
                safety_head=(
                    SafetyHeadPolicy.from_settings(settings) if classifier is not None else None
                ),
                context=target.check_context(),
            )


def may_have_heads(adapters_dir: Path, account: str) -> bool:
    """Whether the registry could hold a head for `account`: heads are written to
    <adapters_dir>/<account>/<task>/, so without such a folder there is none to look up."""
    return any((adapters_dir / account / kind).is_dir() for kind in HEAD_KINDS)


def account_classifier(settings: Settings, account: Account) -> Classifier | None:
    """`account`'s promoted heads as a classifier, or None when it has none (rules, then)."""
    if not may_have_heads(Path(settings.adapters_dir), account.name):
        return None
    from sqlalchemy.exc import SQLAlchemyError

    from bot.errors import StorageError
    from bot.nlp.heads import heads_by_account, load_account_classifier
    from bot.storage.adapters import active_names
    from bot.storage.db import Database

    db = Database(settings.database_url)
    try:
        with db.session() as s:
            active = active_names(s)
    except SQLAlchemyError as exc:
        raise StorageError(
            f"cannot read the adapter registry ({type(exc).__name__}); run `autoreply db "
            "upgrade`, or pass --lexical to classify with the rules"
        ) from exc
    finally:
        db.dispose()
    heads = heads_by_account(active).get(account.name)
    return load_account_classifier(settings, account, heads) if heads else None


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
