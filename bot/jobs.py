"""Scheduled jobs on APScheduler. Every job goes through `guarded`, the one place where job
errors are caught, logged and counted; the jobs themselves are plain coroutine functions.

AsyncIOScheduler needs a running loop, so `start_scheduler` is called from inside the
service's event loop. Model work never runs on the loop (see bot/nlp/generate.py), so jobs are
not starved past their misfire grace time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.outbox import Outbox
from bot.storage import history
from bot.storage.db import Database

log = logging.getLogger(__name__)

OUTBOX_SWEEP_S = 5.0
HEARTBEAT_S = 60.0
UPDATE_IDS_KEPT = timedelta(days=7)


@dataclass
class JobStats:
    runs: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


def guarded(
    name: str, job: Callable[[], Awaitable[object]], stats: JobStats
) -> Callable[[], Awaitable[None]]:
    """Wrap a job so one failure is logged with its traceback and the schedule goes on."""

    async def run() -> None:
        stats.runs[name] = stats.runs.get(name, 0) + 1
        try:
            await job()
        except Exception:  # the scheduler must outlive any one job; the error is logged
            stats.errors[name] = stats.errors.get(name, 0) + 1
            log.exception("scheduled job %r failed; it will run again at its next time", name)

    run.__name__ = name
    return run


async def prune_updates(db: Database) -> int:
    """Forget platform delivery ids older than any redelivery window."""

    def work() -> int:
        with db.session() as s:
            return history.prune_processed_updates(s, UPDATE_IDS_KEPT)

    pruned = await asyncio.to_thread(work)
    if pruned:
        log.info("forgot %d old delivery ids", pruned)
    return pruned


def start_scheduler(
    outbox: Outbox,
    db: Database,
    stats: JobStats | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> AsyncIOScheduler:
    """Start the service's jobs: the outbox sweep (replies enqueued by other processes, e.g.
    `autoreply queue approve`, and rows waiting out a back-off after a restart), and the
    daily pruning of old delivery ids."""
    stats = stats or JobStats()
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    scheduler.add_job(
        guarded("outbox_sweep", outbox.sweep, stats),
        "interval",
        seconds=OUTBOX_SWEEP_S,
        id="outbox_sweep",
    )
    scheduler.add_job(
        guarded("prune_updates", partial(prune_updates, db), stats),
        "interval",
        hours=24,
        next_run_time=datetime.now(UTC) + timedelta(minutes=1),
        id="prune_updates",
    )
    if heartbeat is not None:
        # Accounts' health rows carry a heartbeat: `accounts list` shows a dead process stale.
        scheduler.add_job(
            guarded("heartbeat", partial(asyncio.to_thread, heartbeat), stats),
            "interval",
            seconds=HEARTBEAT_S,
            id="heartbeat",
        )
    scheduler.start()
    return scheduler
