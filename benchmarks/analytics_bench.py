"""How long the analytics page's data and plots take for one account with a few thousand
stored messages (the dashboard's target: well under 300 ms server time per page).

Seeds a database with N inbound messages over D days (analyses, decisions, replies, queued
drafts decided by three moderators, texts from a few support themes), then times, as the
page would run them (median of R repeats, warm): each query, the whole report (queries plus
bucketing), each plot, reading the newest topics; and once, the topics fit the scheduled job
runs (not on page load).

Run: `python -m benchmarks.analytics_bench [--messages 5000] [--days 30] [--database-url URL]`
(a fresh SQLite file by default; a PostgreSQL URL must name an empty database).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from bot.analytics import plots
from bot.analytics.report import AnalyticsReport, load_report
from bot.analytics.series import DayRange
from bot.analytics.topics_job import TopicsJob
from bot.domain import (
    ActorKind,
    ChatKind,
    DecisionAction,
    DraftStatus,
    ModerationKind,
    Sentiment,
    VerdictAction,
)
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


THEMES = {
    "order_status": ["where is my order", "tracking has not moved", "parcel still not delivered"],
    "refund": ["I want a refund", "charged twice on my card", "money back for the return"],
    "wifi": ["the wifi keeps dropping", "cannot log in to the internet", "router is offline"],
    "greeting": ["hello there", "thanks for the quick help", "good morning team"],
    "complaint": ["this is the worst service", "nobody answers my emails", "very disappointed"],
}
FILLER = ["please", "today", "again", "since monday", "order 1234", "asap", "thanks", ""]
MODERATORS = ("alice", "bob", "chen")


def seed(db: Database, messages: int, days: int, now: datetime) -> None:
    rng = random.Random(0)
    with db.session() as s:
        account = m.Account(id=1, name="shop", platform="console", handle="shop")
        s.add(account)
        s.flush()
        for i in range(20):
            s.add(m.PlatformUser(id=i + 1, account_id=1, platform_user_id=f"u{i}"))
            s.add(m.Conversation(id=i + 1, account_id=1, chat_id=f"c{i}", kind=ChatKind.PRIVATE))
        s.flush()
        next_id = messages + 1
        # One list per table, written parent tables first (not every link is a relationship
        # the unit of work could order by).
        inbound: list[object] = []
        analyses: list[object] = []
        replies: list[object] = []
        drafts: list[object] = []
        actions: list[object] = []
        for i in range(1, messages + 1):
            when = now - timedelta(seconds=rng.uniform(0, days * 86400))
            intent = rng.choice(list(THEMES))
            decision = rng.choices(list(DecisionAction), weights=(1, 6, 3))[0]
            text = f"{rng.choice(THEMES[intent])} {rng.choice(FILLER)}".strip()
            user = rng.randint(1, 20)
            inbound.append(
                m.Message(
                    id=i,
                    account_id=1,
                    conversation_id=user,
                    user_id=user,
                    direction=m.Direction.INBOUND,
                    platform_message_id=str(i),
                    text=text,
                    decision=decision,
                    handled_at=when,
                    sent_at=when,
                    created_at=when,
                )
            )
            analyses.append(
                m.Analysis(
                    message_id=i,
                    intent=intent,
                    intent_score=0.8,
                    sentiment=rng.choice(list(Sentiment)),
                    sentiment_score=0.8,
                    input_verdict=VerdictAction.ALLOW,
                    model_version="bench",
                    created_at=when,
                )
            )
            if decision is DecisionAction.IGNORE:
                continue
            sent = when + timedelta(seconds=rng.expovariate(1 / 40))
            if decision is DecisionAction.REVIEW:
                drafts.append(
                    m.ReplyDraft(
                        id=i,
                        message_id=i,
                        text="draft",
                        raw_text="draft",
                        status=DraftStatus.SENT,
                        verdict=VerdictAction.ALLOW,
                        model_version="bench",
                        created_at=when,
                    )
                )
                sent = when + timedelta(seconds=rng.expovariate(1 / 900))
                actions.append(
                    m.ModerationAction(
                        account_id=1,
                        draft_id=i,
                        actor_kind=ActorKind.WEB.value,
                        moderator=rng.choice(MODERATORS),
                        action=rng.choice((ModerationKind.APPROVE, ModerationKind.EDIT)),
                        created_at=sent,
                    )
                )
            replies.append(
                m.Message(
                    id=next_id,
                    account_id=1,
                    conversation_id=user,
                    direction=m.Direction.OUTBOUND,
                    platform_message_id=f"o{i}",
                    reply_to_id=i,
                    text="reply",
                    addressed=False,
                    sent_at=sent,
                    handled_at=sent,
                    created_at=sent,
                )
            )
            next_id += 1
        for rows in (inbound, analyses, replies, drafts, actions):
            s.add_all(rows)
            s.flush()


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
        seed(db, args.messages, args.days, now)
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
                    return len(fn(s, 1, start, end))

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
