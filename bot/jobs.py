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
from apscheduler.triggers.cron import CronTrigger

from bot import privacy
from bot.errors import ConfigError
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


def add_registry_poll(
    scheduler: AsyncIOScheduler,
    poll: Callable[[], Awaitable[None]],
    interval_s: float,
    stats: JobStats | None = None,
) -> None:
    """Check the adapter registry every `interval_s` (promotions and rollbacks from any
    process reach the running service this way; see bot/adapter_sync.py)."""
    scheduler.add_job(
        guarded("registry_poll", poll, stats or JobStats()),
        "interval",
        seconds=interval_s,
        id="registry_poll",
    )


RETENTION_FIRST_RUN = timedelta(minutes=5)  # after start-up work, not during it


async def prune_old_data(db: Database, days: int) -> int:
    """Remove data older than the retention period (see bot/privacy.py); returns the rows
    removed. Logs counts only, never what was removed."""
    removed = await asyncio.to_thread(privacy.prune, db, days)
    total = sum(result.total for result in removed)
    if total:
        detail = "; ".join(f"{r.account}: {r.summary()}" for r in removed if r.total)
        log.info("retention: removed %d rows older than %d days (%s)", total, days, detail)
    return total


def add_retention(
    scheduler: AsyncIOScheduler, db: Database, days: int, stats: JobStats | None = None
) -> None:
    """Prune data older than `days` days once a day (AUTOREPLY_RETENTION_DAYS), the first time
    a few minutes after start."""
    scheduler.add_job(
        guarded("retention", partial(prune_old_data, db, days), stats or JobStats()),
        "interval",
        hours=24,
        next_run_time=datetime.now(UTC) + RETENTION_FIRST_RUN,
        id="retention",
    )


EXPIRY_EVERY = timedelta(minutes=15)


async def expire_drafts(expire: Callable[[timedelta], int], max_age: timedelta) -> int:
    """Expire queued drafts nobody handled within `max_age` (each one audited by `expire`,
    the moderation service's `expire_stale` for the policy actor)."""
    expired = await asyncio.to_thread(expire, max_age)
    if expired:
        log.info("expired %d queued drafts older than %s", expired, max_age)
    return expired


def add_draft_expiry(
    scheduler: AsyncIOScheduler,
    expire: Callable[[timedelta], int],
    hours: float,
    stats: JobStats | None = None,
) -> None:
    """Every quarter hour, expire drafts queued longer than `hours` (AUTOREPLY_QUEUE_EXPIRY_H):
    a reply days late does more harm than none, and the queue stays about today."""
    scheduler.add_job(
        guarded(
            "draft_expiry",
            partial(expire_drafts, expire, timedelta(hours=hours)),
            stats or JobStats(),
        ),
        "interval",
        seconds=EXPIRY_EVERY.total_seconds(),
        next_run_time=datetime.now(UTC) + timedelta(minutes=1),
        id="draft_expiry",
    )


RETRAIN_MISFIRE_GRACE_S = 3600
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def add_nightly_retrain(
    scheduler: AsyncIOScheduler,
    job: Callable[[], Awaitable[object]],
    cron: str,
    stats: JobStats | None = None,
) -> None:
    """Run the nightly retraining (training/schedule.py) at `cron`, in the scheduler's time
    zone. A night missed by up to an hour (the service was busy or restarting) still runs;
    missed nights are run once, not once each; never two at a time in this process (and the
    runner's lease keeps other processes out)."""
    scheduler.add_job(
        guarded("nightly_retrain", job, stats or JobStats()),
        crontab_trigger(cron),
        id="nightly_retrain",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=RETRAIN_MISFIRE_GRACE_S,
    )


def add_topics_fit(
    scheduler: AsyncIOScheduler,
    job: Callable[[], Awaitable[object]],
    cron: str,
    stats: JobStats | None = None,
) -> None:
    """Fit topics at `cron` (bot/analytics/topics_job.py). Each account's lease keeps its fit
    in one process; a run missed by up to an hour still runs, missed runs run once."""
    scheduler.add_job(
        guarded("topics_fit", job, stats or JobStats()),
        crontab_trigger(cron, "AUTOREPLY_TOPICS_CRON"),
        id="topics_fit",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=RETRAIN_MISFIRE_GRACE_S,
    )


def crontab_trigger(expr: str, setting: str = "AUTOREPLY_RETRAIN_CRON") -> CronTrigger:
    """A CronTrigger for a five-field crontab line, read as crontab reads it.

    APScheduler 3 counts numeric weekdays from Monday (0 = Monday), crontab from Sunday
    (0 and 7 = Sunday): numeric weekdays are turned into names first, so "0 3 * * 0" runs on
    Sundays as it would under cron.
    """
    fields = expr.split()
    try:
        if len(fields) != 5:
            raise ValueError(f"it has {len(fields)} fields, not 5")
        fields[4] = _crontab_weekdays(fields[4])
        return CronTrigger.from_crontab(" ".join(fields))
    except ValueError as exc:
        raise ConfigError(
            f"{setting}={expr!r} is not a crontab line ({exc}); write five fields, "
            "minute hour day-of-month month day-of-week, e.g. '30 3 * * *' for 03:30 daily"
        ) from exc


def _crontab_weekdays(field: str) -> str:
    """Crontab's numeric day-of-week field as day names; names and '*' pass unchanged."""
    if field == "*" or any(c.isalpha() for c in field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            first, last = 0, 6
        else:
            low, _, high = span.partition("-")
            first, last = int(low), int(high or (6 if step else low))
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
            raise ValueError(f"day of week {part!r} is outside 0-7")
        days.update(day % 7 for day in range(first, last + 1, int(step or 1)))
    return ",".join(_CRON_DAYS[day] for day in sorted(days))
