"""Toxicity scores in [0, 1] from alt-profanity-check, in-process or in a worker process.

Importing alt-profanity-check costs ~1.1-1.4 s (scikit-learn, scipy and two joblib files) while
scoring 10,000 lines takes ~0.06 s. A long-running service pays the import once
(`ProfanityCheckScorer`). A short command such as `autoreply classify` cannot, so
`ProfanityCheckWorker` loads the model in a second process right away and the caller does its
own work (VADER, rules, PII) on the other core meanwhile. Both return the library's own
`predict_prob` values; the worker sends them as JSON, whose float repr round-trips exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from queue import SimpleQueue
from types import TracebackType
from typing import IO, Self

from bot.errors import ModelLoadError

_INSTALL_HINT = (
    "check that alt-profanity-check and the scikit-learn version it pins are installed "
    "(pip install -e .)"
)


class ToxicityScorer(ABC):
    """Scores texts for toxicity, 0 (clean) to 1 (toxic).

    Override `submit`, which may answer later through the returned future; override `close` if
    the scorer holds a process or other resources.
    """

    name: str

    @abstractmethod
    def submit(self, texts: Sequence[str]) -> Future[list[float]]:
        """Start scoring `texts`; the future yields one score per text, in order."""

    def score_many(self, texts: Sequence[str]) -> list[float]:
        return self.submit(texts).result()

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release resources. Safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _load_predict_prob() -> Callable[[Sequence[str]], Sequence[float]]:
    try:
        from profanity_check import predict_prob
    except ImportError as exc:
        raise ModelLoadError(f"cannot load the toxicity model ({exc}); {_INSTALL_HINT}") from exc
    return predict_prob  # type: ignore[no-any-return]


class ProfanityCheckScorer(ToxicityScorer):
    """alt-profanity-check in this process; the model loads on the first call (~1.2 s)."""

    name = "alt-profanity-check"

    def __init__(self) -> None:
        self._predict: Callable[[Sequence[str]], Sequence[float]] | None = None

    def submit(self, texts: Sequence[str]) -> Future[list[float]]:
        if self._predict is None:
            self._predict = _load_predict_prob()
        future: Future[list[float]] = Future()
        future.set_result([float(p) for p in self._predict(list(texts))] if texts else [])
        return future


class ProfanityCheckWorker(ToxicityScorer):
    """alt-profanity-check in a child process (`python -m bot.safety.toxicity_worker`).

    Create it with `start()`, as early as possible: the child starts loading the model at once.
    Requests are JSON lines answered in order. A writer thread feeds the pipe so `submit` never
    blocks while the child is still importing; a reader thread resolves the futures.
    """

    name = "alt-profanity-check"

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        if process.stdin is None or process.stdout is None:
            raise ValueError("the worker process needs stdin=PIPE and stdout=PIPE")
        self._process = process
        self._pending: deque[Future[list[float]]] = deque()
        self._lock = threading.Lock()
        self._outbox: SimpleQueue[bytes | None] = SimpleQueue()
        self._closed = False
        self._failure: ModelLoadError | None = None
        self._writer = threading.Thread(
            target=self._write, args=(process.stdin,), name="toxicity-writer", daemon=True
        )
        self._reader = threading.Thread(
            target=self._read, args=(process.stdout,), name="toxicity-reader", daemon=True
        )

    @classmethod
    def attach(cls, process: subprocess.Popen[bytes]) -> ProfanityCheckWorker:
        """Serve requests through an already started worker process (tests pass stand-ins)."""
        worker = cls(process)
        worker._writer.start()
        worker._reader.start()
        return worker

    @classmethod
    def start(cls) -> ProfanityCheckWorker:
        """Spawn the child; it inherits stderr so its own errors stay visible."""
        env = dict(os.environ)
        # Scoring is sparse maths: BLAS thread pools would only start threads (~0.1 s CPU)
        # that compete with the parent for the cores.
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, "1")
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.safety.toxicity_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        return cls.attach(process)

    def submit(self, texts: Sequence[str]) -> Future[list[float]]:
        future: Future[list[float]] = Future()
        with self._lock:
            # Closed first: once close() returns, the reader has also recorded the child's exit
            # as a failure, and a "model failed to load" error would mislead.
            if self._closed:
                raise RuntimeError("this ProfanityCheckWorker is closed; start a new one")
            if self._failure is not None:
                future.set_exception(self._failure)
                return future
            self._pending.append(future)
            self._outbox.put(json.dumps(list(texts)).encode("ascii") + b"\n")
        return future

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._outbox.put(None)  # closes the child's stdin: it exits after its last answer
        self._writer.join()
        self._reader.join()
        self._process.wait()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._process.kill()  # nobody will wait for the answers: skip the model load
        self.close()

    def _write(self, pipe: IO[bytes]) -> None:
        with contextlib.suppress(BrokenPipeError):  # the child died: the reader reports it
            while (payload := self._outbox.get()) is not None:
                pipe.write(payload)
                pipe.flush()
        with contextlib.suppress(BrokenPipeError):
            pipe.close()

    def _read(self, pipe: IO[bytes]) -> None:
        for line in pipe:
            with self._lock:
                future = self._pending.popleft()
            future.set_result(json.loads(line))
        code = self._process.wait()
        failure = ModelLoadError(
            f"the toxicity worker exited with code {code} before answering (its error is "
            f"printed above); {_INSTALL_HINT}"
        )
        with self._lock:
            self._failure = failure  # later submits fail at once instead of waiting forever
            while self._pending:
                self._pending.popleft().set_exception(failure)
