"""The real alt-profanity-check model, in-process and in the worker process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from bot.errors import ModelLoadError
from bot.safety.toxicity import ProfanityCheckScorer, ProfanityCheckWorker

TOXIC = ["you are a fucking idiot", "go fuck yourself", "shut up you stupid bitch"]
CLEAN = ["thanks for the quick reply!", "where is my order #4411?", "love the new hoodie", ""]


@pytest.fixture(scope="module")
def in_process() -> ProfanityCheckScorer:
    return ProfanityCheckScorer()


@pytest.fixture(scope="module")
def worker() -> Iterator[ProfanityCheckWorker]:
    with ProfanityCheckWorker.start() as started:
        yield started


def test_clear_examples(in_process: ProfanityCheckScorer) -> None:
    toxic = in_process.score_many(TOXIC)
    clean = in_process.score_many(CLEAN)
    assert all(t >= 0.85 for t in toxic), toxic
    assert all(c < 0.5 for c in clean), clean
    assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for x in toxic + clean)


def test_worker_returns_the_library_scores_exactly(
    in_process: ProfanityCheckScorer, worker: ProfanityCheckWorker
) -> None:
    texts = TOXIC + CLEAN + ["line\nbreak", "ünïcödé 😡", '"quoted" \\ back']
    futures = [worker.submit(texts[:4]), worker.submit([]), worker.submit(texts[4:])]
    got = [x for f in futures for x in f.result()]
    assert got == in_process.score_many(texts)


def test_a_dead_worker_fails_with_an_actionable_error() -> None:
    dying = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.exit(3)"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    with ProfanityCheckWorker.attach(dying) as worker:
        with pytest.raises(ModelLoadError, match=r"exited with code 3.*alt-profanity-check"):
            worker.score_many(["hello"])
        with pytest.raises(ModelLoadError):  # later calls fail at once, never hang
            worker.score_many(["again"])


def test_close_answers_pending_requests_ends_the_child_and_refuses_new_ones() -> None:
    worker = ProfanityCheckWorker.start()  # its own child, not the module fixture's
    child = worker._process
    pending = worker.submit(TOXIC[:1])  # asked before close: close must not drop it
    worker.close()
    assert child.returncode == 0  # the child saw its stdin close, exited cleanly and was reaped
    assert pending.done() and pending.result()[0] >= 0.85
    worker.close()  # a second close is a no-op: no error, no hang
    assert child.returncode == 0
    with pytest.raises(RuntimeError, match="closed; start a new one"):
        worker.submit(["after close"])
