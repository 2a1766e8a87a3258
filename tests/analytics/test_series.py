"""Per-day bucketing and statistics (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.analytics.series import DayRange, count_by_day, durations_by_day, percentile

D1, D2 = date(2026, 11, 2), date(2026, 11, 3)


def test_bounds_are_the_local_midnights_in_utc() -> None:
    days = DayRange(D1, D2, ZoneInfo("Europe/Berlin"))
    start, end = days.bounds()
    assert start == datetime(2026, 11, 1, 23, tzinfo=UTC)
    assert end == datetime(2026, 11, 3, 23, tzinfo=UTC)
    assert DayRange.ending(D2, 2) == DayRange(D1, D2)


def test_a_range_must_be_in_order_and_at_most_a_year() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        DayRange(D2, D1)
    with pytest.raises(ValueError, match="at most 366 days"):
        DayRange(date(2025, 1, 1), date(2026, 1, 2))


def test_counts_keep_the_given_order_then_largest_first() -> None:
    t1, t2 = datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 3, 9, tzinfo=UTC)
    outside = datetime(2026, 11, 5, tzinfo=UTC)
    items = [(t1, "b"), (t2, "b"), (t1, "c"), (t1, "z"), (t2, "z"), (t2, "z"), (outside, "z")]
    counts = count_by_day(DayRange(D1, D2), items, order=("a",))
    assert counts.keys == ("a", "z", "b", "c")
    assert counts.counts == ((0, 0), (1, 2), (1, 1), (1, 0))
    assert counts.totals() == (3, 3)
    assert counts.shares()[1] == pytest.approx((1 / 3, 2 / 3))
    assert not counts.empty
    assert count_by_day(DayRange(D1, D2), [], ("a",)).empty


def test_durations_median_and_nearest_rank_p90() -> None:
    t1 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    stats = durations_by_day(DayRange(D1, D2), [(t1, float(s)) for s in range(1, 11)])
    assert stats.count == (10, 0)
    assert stats.median_s == (5.5, None)
    assert stats.p90_s == (9.0, None)
    assert percentile([3.0, 1.0, 2.0], 90) == 3.0
    assert percentile([7.0], 50) == 7.0
