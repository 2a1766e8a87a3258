"""Login rate limiting: so many wrong passwords for one name from one address, then a pause.

Kept in memory per app: a restart forgets the count, which is fine for slowing down guessing
(argon2 already makes each guess cost). Thread-safe, since sync routes run in a thread pool.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class LoginLimiter:
    def __init__(
        self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_failures
        self._window = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, name: str, address: str) -> float | None:
        """Seconds until this name may be tried again from this address; None: go ahead."""
        with self._lock:
            failures = self._recent((name.lower(), address))
            if len(failures) < self._max:
                return None
            return max(1.0, failures[0] + self._window - self._clock())

    def failed(self, name: str, address: str) -> None:
        with self._lock:
            key = (name.lower(), address)
            self._recent(key).append(self._clock())

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._failures.pop((name.lower(), address), None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        cutoff = self._clock() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            # Forget idle keys so guessing many names does not grow the table for ever.
            for stale in [k for k, v in self._failures.items() if not v and k != key]:
                del self._failures[stale]
        return failures
