"""Test doubles for the safety seam; they subclass the real interface."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future

from bot.safety.toxicity import ToxicityScorer


class MappedToxicity(ToxicityScorer):
    """Scores from a table (exact text), `default` for anything else; answers at once."""

    name = "mapped"

    def __init__(self, scores: Mapping[str, float] | None = None, default: float = 0.01) -> None:
        self.scores = dict(scores or {})
        self.default = default
        self.calls: list[list[str]] = []
        self.closed = False

    def submit(self, texts: Sequence[str]) -> Future[list[float]]:
        self.calls.append(list(texts))
        future: Future[list[float]] = Future()
        future.set_result([self.scores.get(t, self.default) for t in texts])
        return future

    def close(self) -> None:
        self.closed = True


class SlowFirstToxicity(MappedToxicity):
    """Answers each batch from a thread, earlier batches later: exercises out-of-order replies."""

    name = "slow-first"

    def __init__(self, scores: Mapping[str, float] | None = None, first_delay: float = 0.3) -> None:
        super().__init__(scores)
        self.first_delay = first_delay

    def submit(self, texts: Sequence[str]) -> Future[list[float]]:
        answer = super().submit(texts).result()
        delay = max(0.0, self.first_delay - 0.1 * (len(self.calls) - 1))
        future: Future[list[float]] = Future()

        def resolve() -> None:
            time.sleep(delay)
            future.set_result(answer)

        threading.Thread(target=resolve, daemon=True).start()
        return future
