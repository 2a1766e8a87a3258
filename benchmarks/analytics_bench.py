"""How long the analytics page's data and plots take for one account with a few thousand
stored messages (the dashboard's target: well under 300 ms server time per page).

Seeds a database with N inbound messages over D days (benchmarks/history_seed.py: analyses,
decisions, replies, drafts decided by three moderators, texts from a few support themes), then
times, as the page would run them (median of R repeats, warm): each query, the whole report
(queries plus bucketing), each plot, reading the newest topics; and once, the topics fit the
scheduled job runs (not on page load).

Run: `python -m benchmarks.analytics_bench [--messages 5000] [--days 30] [--database-url URL]`
(a fresh SQLite file by default; a PostgreSQL URL must name an empty database).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

from benchmarks.history_seed import History, seed_history
from bot.analytics import plots
from bot.analytics.report import AnalyticsReport, load_report
from bot.analytics.series import DayRange
from bot.analytics.topics_job import TopicsJob
from bot.storage import analytics_queries as q
from bot.storage import models as m
from bot.storage import topics as topic_store
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    wall_ms: float
    cpu_ms: float

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall_ms + other.wall_ms, self.cpu_ms + other.cpu_ms)


def seed(db: Database, messages: int, days: int, now: datetime) -> int:
    """The account "shop" with `messages` over `days` (mostly answered, a third reviewed)."""
    with db.session() as s:
        s.add(m.Account(name="shop", platform="console", handle="shop"))
    history = History(messages=messages, days=days, users=20, decisions=(1, 6, 3), seed=0)
    return seed_history(db, "shop", history, now)


def timed(work: Callable[[], T], repeats: int) -> tuple[Timing, T]:
    """Median wall and CPU milliseconds over `repeats` warm runs, and the last result. CPU
    time (this process's) is the figure to trust on a busy machine: wall time there includes
    waiting for a core."""
    result = work()  # warm: imports, caches, the first connection
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = work()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return Timing(statistics.median(wall), statistics.median(cpu)), result


def uncached(draw: Callable[[], str]) -> Callable[[], str]:
    def run() -> str:
        plots.clear_cache()
        return draw()

    return run


def draw_all(report: AnalyticsReport, cached: bool = False) -> list[str]:
    if not cached:
        plots.clear_cache()
    return [
        plots.intent_plot(report.intents),
        plots.sentiment_plot(report.sentiments),
        plots.decision_plot(report.decisions),
        plots.latency_plot(report.reply_latency),
        plots.queue_plot(report.queue_wait, report.workload),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        ensure_schema(url)
        db = Database(url)
        now = datetime.now(UTC)
        started = time.perf_counter()
        account_id = seed(db, args.messages, args.days, now)
        print(
            f"seeded {args.messages} messages over {args.days} days in "
            f"{time.perf_counter() - started:.1f} s ({url.split(':')[0]})"
        )
        days = DayRange.ending(date.today(), args.days)
        start, end = days.bounds()
        rows: list[tuple[str, Timing]] = []

        def query(fn: Callable[..., Sequence[object]]) -> Callable[[], int]:
            def run() -> int:
                with db.session() as s:
                    return len(fn(s, account_id, start, end))

            return run

        for name, fn in (
            ("query inbound_facts", q.inbound_facts),
            ("query reply_delays", q.reply_delays),
            ("query queue_waits", q.queue_waits),
            ("query moderator_actions", q.moderator_actions),
        ):
            ms, n = timed(query(fn), args.repeats)
            rows.append((f"{name} ({n} rows)", ms))
        ms, report = timed(lambda: load_report(db, "shop", days), args.repeats)
        rows.append(("report: all queries + bucketing", ms))
        report_ms = ms
        for name, draw in (
            ("plot intent", lambda: plots.intent_plot(report.intents)),
            ("plot sentiment", lambda: plots.sentiment_plot(report.sentiments)),
            ("plot decisions", lambda: plots.decision_plot(report.decisions)),
            ("plot latency", lambda: plots.latency_plot(report.reply_latency)),
            ("plot queue + workload", lambda: plots.queue_plot(report.queue_wait, report.workload)),
        ):
            ms, svg = timed(uncached(draw), args.repeats)
            rows.append((f"{name} ({len(svg) // 1024} KiB)", ms))
        plots_ms, _ = timed(lambda: draw_all(report), args.repeats)
        rows.append(("all five plots", plots_ms))
        cached_ms, _ = timed(lambda: draw_all(report, cached=True), args.repeats)
        rows.append(("all five plots, same data again (cached)", cached_ms))
        job = TopicsJob(db, ["shop"], window_days=7)
        fit, summary = timed(lambda: job.fit("shop"), 1)

        def newest_topics() -> int:
            with db.session() as s:
                shown = topic_store.latest(s, 1)
            return len(shown.topics) if shown else 0

        topics_ms, _ = timed(newest_topics, args.repeats)
        rows.append(("read newest topics", topics_ms))
        rows.append(("PAGE TOTAL (report + plots + topics)", report_ms + plots_ms + topics_ms))
        rows.append(
            (
                f"topics fit, scheduled job ({summary.messages} messages, {summary.topics} topics)",
                fit,
            )
        )
        width = max(len(name) for name, _ in rows)
        print(f"{'':<{width}}  {'wall ms':>8}  {'cpu ms':>8}")
        for name, timing in rows:
            print(f"{name:<{width}}  {timing.wall_ms:8.1f}  {timing.cpu_ms:8.1f}")
        db.dispose()


if __name__ == "__main__":
    main()
