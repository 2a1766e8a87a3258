"""What the Analytics page shows for one account and range, and the short-lived cache of it.

Reading and bucketing a month of a busy account's messages takes about 100 ms and drawing the
five plots about 250 ms the first time, more than the page's budget (300 ms server time). So
the figures of each (account, range) are kept for `ttl_s` seconds (one minute: the page says
"updated every minute"), in the app's own `AnalyticsCache`, never in a process-wide global:
every app, and so every test, starts empty. Topics are not cached: reading the newest run is a
few milliseconds, and its example texts are looked up on every view, so an erased user's
message leaves the page at once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import Request

from bot.accounts import load_accounts
from bot.analytics import plots
from bot.analytics.report import AnalyticsReport, load_report
from bot.analytics.series import UTC_ZONE, DayRange
from bot.config import Settings
from bot.domain import utcnow
from bot.errors import ConfigError
from bot.storage.db import Database

log = logging.getLogger(__name__)

CACHE_TTL_S = 60.0
CACHE_ENTRIES = 64  # (account, range) pairs kept at most; a 30-day set of plots is ~150 KiB


@dataclass(frozen=True, slots=True)
class Figures:
    """One account's plots and totals over one range, as of `built_at`."""

    account: str
    days: DayRange
    built_at: datetime
    messages: int  # inbound messages in the range
    decisions: dict[str, int]  # auto / review / ignore totals
    replies: int
    moderated: int  # drafts decided by a moderator
    plots: tuple[str, ...]  # five inline <svg> elements


def build_figures(db: Database, account: str, days: DayRange) -> Figures:
    """Read the account's series and draw the five plots (raises NotFoundError for an unknown
    account)."""
    report = load_report(db, account, days)
    return Figures(
        account=account,
        days=days,
        built_at=utcnow(),
        messages=sum(report.sentiments.totals()),
        decisions={key: sum(report.decisions.of(key)) for key in report.decisions.keys},
        replies=sum(report.reply_latency.count),
        moderated=sum(report.queue_wait.count),
        plots=draw(report),
    )


def draw(report: AnalyticsReport) -> tuple[str, ...]:
    drawn = (
        plots.intent_plot(report.intents),
        plots.sentiment_plot(report.sentiments),
        plots.decision_plot(report.decisions),
        plots.latency_plot(report.reply_latency),
        plots.queue_plot(report.queue_wait, report.workload),
    )
    return tuple(scoped_ids(svg, f"plot{i}-") for i, svg in enumerate(drawn))


_ID_REFERENCE = re.compile(r'(\bid="|xlink:href="#|href="#|url\(#)')


def scoped_ids(svg: str, prefix: str) -> str:
    """Prefix every id in one SVG and every reference to one. matplotlib numbers ids per
    figure ("figure_1", "text_6", clip paths by content), so five plots inlined in one page
    would repeat them, and an HTML page's ids must be unique."""
    return _ID_REFERENCE.sub(lambda match: match.group(1) + prefix, svg)


Key = tuple[str, DayRange]


class AnalyticsCache:
    """Figures per (account, range) for `ttl_s` seconds. A burst of requests for the same
    figures builds them once: the first builds, the others wait for it. `builds` counts the
    figures actually built (for tests and benchmarks)."""

    def __init__(self, ttl_s: float = CACHE_TTL_S, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[Key, tuple[float, Figures]] = {}
        self._building: dict[Key, threading.Lock] = {}
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, key: Key, build: Callable[[], Figures]) -> Figures:
        fresh = self._fresh(key)
        if fresh is not None:
            return fresh
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            fresh = self._fresh(key)  # built by the request we waited for
            if fresh is not None:
                return fresh
            figures = build()
            with self._lock:
                self.builds += 1
                self._forget_expired()
                while len(self._entries) >= CACHE_ENTRIES:
                    del self._entries[min(self._entries, key=lambda k: self._entries[k][0])]
                self._entries[key] = (self._clock() + self.ttl_s, figures)
                self._building.pop(key, None)
            return figures

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _fresh(self, key: Key) -> Figures | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def _forget_expired(self) -> None:
        now = self._clock()
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]


_CREATING = threading.Lock()  # guards only the first creation of an app's cache


def analytics_cache(request: Request) -> AnalyticsCache:
    """This app's cache (`app.state.analytics_cache`), made on first use; a test may set its
    own there before the first request."""
    state = request.app.state
    with _CREATING:
        if getattr(state, "analytics_cache", None) is None:
            state.analytics_cache = AnalyticsCache()
        cache: AnalyticsCache = state.analytics_cache
    return cache


def account_zones(settings: Settings) -> dict[str, ZoneInfo]:
    """Each configured account's business-hours time zone (accounts without business hours
    count their days in UTC). A config that cannot be resolved here (say, a token variable
    the dashboard's process lacks) leaves every account on UTC, with a warning."""
    try:
        accounts = load_accounts(settings)
    except ConfigError as exc:
        log.warning("analytics: days are counted in UTC, the accounts did not load: %s", exc)
        return {}
    return {a.name: a.policy.hours.zone for a in accounts if a.policy.hours is not None}


def zone_of(request: Request, settings: Settings, account: str) -> ZoneInfo:
    state = request.app.state
    with _CREATING:
        if getattr(state, "analytics_zones", None) is None:
            state.analytics_zones = account_zones(settings)
        zones: dict[str, ZoneInfo] = state.analytics_zones
    return zones.get(account, UTC_ZONE)


def day_range(days: int, tz: ZoneInfo, now: datetime | None = None) -> DayRange:
    """The last `days` days up to today, as the account's calendar has them."""
    today = (now or utcnow()).astimezone(tz).date()
    return DayRange.ending(today, days, tz)


def age(then: datetime, now: datetime | None = None) -> str:
    """'just now', '12 min ago', '3 h ago', '2 days ago'."""
    elapsed = (now or utcnow()) - then
    if elapsed < timedelta(minutes=1):
        return "just now"
    if elapsed < timedelta(hours=1):
        return f"{int(elapsed.total_seconds() // 60)} min ago"
    if elapsed < timedelta(days=2):
        return f"{int(elapsed.total_seconds() // 3600)} h ago"
    return f"{elapsed.days} days ago"
