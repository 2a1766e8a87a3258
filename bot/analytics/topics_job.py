"""The scheduled topics fit: for each account, fit on the last `window_days` of inbound
messages, compare with the window before, store a TopicRun.

With several processes serving the same accounts, each account's fit runs in one of them: the
one holding the lease "topics:<account id>" (bot/storage/leases.py). The lease is taken at the
first run and renewed at every run after, never released in between, so the same process keeps
fitting (its TTL outlasts the schedule's interval); when that process dies, the lease expires
and another process takes over at its next run. `release` gives the leases up on shutdown. A
fit by hand (`autoreply analytics topics`) needs no lease: it only adds one more run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from bot.domain import utcnow
from bot.errors import NotFoundError
from bot.storage import accounts as account_store
from bot.storage import leases
from bot.storage import topics as topic_store
from bot.storage.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FitSummary:
    account: str
    account_id: int
    run_id: int
    messages: int
    topics: int


def lease_name(account_id: int) -> str:
    return f"topics:{account_id}"


class TopicsJob:
    """Fits topics for `accounts` (names); `run` is the scheduled entry point."""

    def __init__(
        self,
        db: Database,
        accounts: Sequence[str],
        *,
        window_days: int = 7,
        max_topics: int = 8,
        lease_s: float = 7200.0,
        holder: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.accounts = list(accounts)
        self.window = timedelta(days=window_days)
        self.max_topics = max_topics
        self.lease_s = lease_s
        self.holder = holder or leases.new_holder("topics")
        self._clock = clock

    async def run(self) -> list[FitSummary]:
        """Fit every account whose lease this process holds (taking free or expired ones)."""
        return await asyncio.to_thread(self._run_leased)

    def _run_leased(self) -> list[FitSummary]:
        done = []
        for name in self.accounts:
            account_id = self._account_id(name)
            if not self._lease(account_id):
                log.debug("topics for %r: another process holds the lease and fits them", name)
                continue
            done.append(self.fit(name))
        return done

    def fit(self, account: str) -> FitSummary:
        """Fit and store one account's topics now (no lease: a fit by hand)."""
        from bot.analytics.topic_model import fit_topics  # scikit-learn only when fitting

        account_id = self._account_id(account)
        end = self._clock()
        start = end - self.window
        with self.db.session() as s:
            current = topic_store.texts_between(s, account_id, start, end)
            previous = topic_store.texts_between(s, account_id, start - self.window, start)
        fit = fit_topics(current, previous, self.max_topics)
        with self.db.session() as s:
            run_id = topic_store.save(
                s, account_id, fit, fitted_at=self._clock(), window_start=start, window_end=end
            )
        log.info(
            "topics for %r: %d topics over %d messages (run %d)",
            account,
            len(fit.topics),
            fit.messages,
            run_id,
        )
        return FitSummary(account, account_id, run_id, fit.messages, len(fit.topics))

    def release(self) -> None:
        """Give up this process's topic leases (at shutdown), so another process takes over at
        its next run instead of after the expiry. Never raises: shutdown goes on, and a lease
        not released expires by itself."""
        try:
            with self.db.session() as s:
                for name in self.accounts:
                    state = account_store.by_name(s, name)
                    if state is not None:
                        leases.release(s, lease_name(state.id), self.holder)
        except SQLAlchemyError as exc:
            log.warning("could not release the topics leases (%s); they expire by themselves", exc)

    def _lease(self, account_id: int) -> bool:
        with self.db.session() as s:
            return leases.acquire(s, lease_name(account_id), self.holder, self.lease_s)

    def _account_id(self, name: str) -> int:
        with self.db.session() as s:
            state = account_store.by_name(s, name)
        if state is None:
            raise NotFoundError(
                f"no account named {name!r} in the database; check the name with "
                "`autoreply accounts list` (an account appears once the service has run)"
            )
        return state.id
