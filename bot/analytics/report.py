"""Everything the analytics page plots for one account and range, read in one session."""

from __future__ import annotations

from dataclasses import dataclass

from bot.analytics.series import (
    DailyCounts,
    DailyDurations,
    DayRange,
    count_by_day,
    durations_by_day,
)
from bot.domain import DecisionAction, Sentiment
from bot.errors import NotFoundError
from bot.storage import accounts as account_store
from bot.storage import analytics_queries as q
from bot.storage.db import Database

DECISIONS = tuple(
    d.value for d in (DecisionAction.AUTO, DecisionAction.REVIEW, DecisionAction.IGNORE)
)
SENTIMENTS = tuple(s.value for s in (Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE))


@dataclass(frozen=True, slots=True)
class AnalyticsReport:
    account: str
    days: DayRange
    intents: DailyCounts
    sentiments: DailyCounts
    decisions: DailyCounts  # auto / review / ignore; `.shares()` for the page's plot
    reply_latency: DailyDurations  # inbound message -> first reply sent
    queue_wait: DailyDurations  # draft created -> a moderator's decision
    workload: DailyCounts  # actions per moderator


def load_report(db: Database, account: str, days: DayRange) -> AnalyticsReport:
    """Read and bucket one account's series for `days`. Raises NotFoundError for an unknown
    account name."""
    start, end = days.bounds()
    with db.session() as s:
        state = account_store.by_name(s, account)
        if state is None:
            raise NotFoundError(
                f"no account named {account!r} in the database; check the name with "
                "`autoreply accounts list`"
            )
        inbound = q.inbound_facts(s, state.id, start, end)
        replies = q.reply_delays(s, state.id, start, end)
        waits = q.queue_waits(s, state.id, start, end)
        actions = q.moderator_actions(s, state.id, start, end)
    return AnalyticsReport(
        account=account,
        days=days,
        intents=count_by_day(days, ((f.at, f.intent) for f in inbound if f.intent is not None)),
        sentiments=count_by_day(
            days, ((f.at, f.sentiment) for f in inbound if f.sentiment is not None), SENTIMENTS
        ),
        decisions=count_by_day(
            days, ((f.at, f.decision) for f in inbound if f.decision is not None), DECISIONS
        ),
        reply_latency=durations_by_day(days, ((d.at, d.seconds) for d in replies)),
        queue_wait=durations_by_day(days, ((d.at, d.seconds) for d in waits)),
        workload=count_by_day(days, ((a.at, a.moderator) for a in actions)),
    )
