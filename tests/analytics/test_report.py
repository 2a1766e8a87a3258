"""The analytics page's series on both backends, from rows with known times: exact counts per
day, latency and queue-wait statistics, workload per moderator; other accounts, edits and rows
outside the range left out."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from bot.analytics.report import load_report
from bot.analytics.series import DayRange
from bot.domain import ActorKind, DecisionAction, ModerationKind, Sentiment
from bot.errors import NotFoundError
from bot.storage.db import Database
from tests.analytics.seed import Seeder, at

D1, D2, D3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)
AUTO, REVIEW, IGNORE = DecisionAction.AUTO, DecisionAction.REVIEW, DecisionAction.IGNORE
NEG, NEU, POS = Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE


def _seed(db: Database) -> None:
    with db.session() as s:
        shop = Seeder(s)
        m1 = shop.inbound(at(2, 10), intent="order_status", sentiment=NEG, decision=AUTO)
        shop.reply(m1, at(2, 10, 0, 30))  # 30 s
        m2 = shop.inbound(at(2, 11), intent="order_status", sentiment=NEU, decision=REVIEW)
        d2 = shop.draft(m2, at(2, 11, 0, 5))
        shop.action("alice", ModerationKind.APPROVE, at(2, 11, 10, 5), d2)  # waited 600 s
        shop.action("bob", ModerationKind.EDIT, at(2, 11, 20), d2)  # later: not the wait
        shop.reply(m2, at(2, 11, 10, 10))  # 610 s
        shop.reply(m2, at(2, 11, 30))  # a second reply: only the first counts
        shop.inbound(at(2, 12), intent="greeting", sentiment=POS, decision=IGNORE)
        m4 = shop.inbound(at(3, 9), intent="refund", sentiment=NEG, decision=REVIEW)
        shop.inbound(at(3, 9, 5), intent="refund", sentiment=NEG, decision=REVIEW, edit_of=m4)
        d4 = shop.draft(m4, at(3, 9))
        shop.action("bob", ModerationKind.REJECT, at(3, 9, 30), d4)  # 1800 s
        m6 = shop.inbound(at(3, 23, 30), intent="greeting", sentiment=NEU, decision=AUTO)
        shop.reply(m6, at(4, 0, 0, 10))  # 1810 s, sent on D3: outside a D1..D2 range
        shop.inbound(at(1, 23, 59), intent="greeting", decision=AUTO)  # the day before
        shop.inbound(at(3, 10))  # not handled yet, no analysis: counted nowhere
        shop.action("policy", ModerationKind.AUTO_SEND, at(2, 10), actor=ActorKind.POLICY)
        shop.action("carol", ModerationKind.REFUSED, at(2, 13))
        shop.action("alice", ModerationKind.RELABEL, at(3, 12))
        other = Seeder(s, "other")
        o1 = other.inbound(at(2, 10), intent="spam", decision=IGNORE)
        other.action("zed", ModerationKind.REJECT, at(2, 10, 1), other.draft(o1, at(2, 10)))


def test_counts_per_day(migrated_db: Database) -> None:
    _seed(migrated_db)
    report = load_report(migrated_db, "shop", DayRange(D1, D2))

    assert report.intents.days == (D1, D2)
    assert report.intents.keys == ("greeting", "order_status", "refund")
    assert report.intents.of("order_status") == (2, 0)
    assert report.intents.of("greeting") == (1, 1)
    assert report.intents.of("refund") == (0, 1)
    assert report.intents.of("spam") == (0, 0)

    assert report.sentiments.keys == ("negative", "neutral", "positive")
    assert report.sentiments.counts == ((1, 1), (1, 1), (1, 0))

    assert report.decisions.keys == ("auto", "review", "ignore")
    assert report.decisions.counts == ((1, 1), (1, 1), (1, 0))
    assert report.decisions.shares()[0] == pytest.approx((1 / 3, 0.5))


def test_latency_queue_wait_and_workload(migrated_db: Database) -> None:
    _seed(migrated_db)
    report = load_report(migrated_db, "shop", DayRange(D1, D3))

    latency = report.reply_latency
    assert latency.count == (2, 0, 1)
    assert latency.median_s == (320.0, None, 1810.0)
    assert latency.p90_s == (610.0, None, 1810.0)

    assert report.queue_wait.count == (1, 1, 0)
    assert report.queue_wait.median_s == (600.0, 1800.0, None)

    workload = report.workload
    assert set(workload.keys) == {"alice", "bob"}
    assert workload.of("alice") == (1, 1, 0)
    assert workload.of("bob") == (1, 1, 0)


def test_days_follow_the_accounts_time_zone(migrated_db: Database) -> None:
    _seed(migrated_db)
    # In Tokyo (UTC+9) the message of Nov 1, 23:59 UTC falls on Nov 2, and those of
    # Nov 2 10:00-12:00 UTC on Nov 2 19:00-21:00; Nov 3 09:00 UTC is Nov 3 18:00.
    report = load_report(migrated_db, "shop", DayRange(D1, D2, ZoneInfo("Asia/Tokyo")))
    assert report.intents.of("greeting") == (2, 0)
    assert report.intents.of("order_status") == (2, 0)
    assert report.intents.of("refund") == (0, 1)


def test_an_unknown_account_says_where_to_look(migrated_db: Database) -> None:
    with pytest.raises(NotFoundError, match="autoreply accounts list"):
        load_report(migrated_db, "nobody", DayRange(D1, D2))
