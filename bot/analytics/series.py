"""Per-day series over a range of days in one time zone: counts by label and duration
statistics. Pure functions over plain rows; the dataclasses are frozen and hashable, so a
caller can cache the plots drawn from them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

UTC_ZONE = ZoneInfo("UTC")
MAX_DAYS = 366  # a year of days keeps every plot readable and every query small


@dataclass(frozen=True, slots=True)
class DayRange:
    """The days `first` to `last`, both included, as the account's calendar (`tz`) has them."""

    first: date
    last: date
    tz: ZoneInfo = UTC_ZONE

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the range ends ({self.last}) before it starts ({self.first})")
        if (self.last - self.first).days >= MAX_DAYS:
            raise ValueError(f"choose at most {MAX_DAYS} days, not {self.days_count}")

    @classmethod
    def ending(cls, last: date, days: int, tz: ZoneInfo = UTC_ZONE) -> DayRange:
        """The `days` days up to and including `last`."""
        return cls(last - timedelta(days=days - 1), last, tz)

    @property
    def days_count(self) -> int:
        return (self.last - self.first).days + 1

    def days(self) -> tuple[date, ...]:
        return tuple(self.first + timedelta(days=i) for i in range(self.days_count))

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC: midnight of the first day to midnight after the last."""
        start = datetime.combine(self.first, time(), self.tz)
        end = datetime.combine(self.last + timedelta(days=1), time(), self.tz)
        return start.astimezone(UTC), end.astimezone(UTC)

    def day_of(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()


@dataclass(frozen=True, slots=True)
class DailyCounts:
    """How many of each key per day: `counts[i][j]` is key `keys[i]` on day `days[j]`."""

    days: tuple[date, ...]
    keys: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def of(self, key: str) -> tuple[int, ...]:
        if key not in self.keys:
            return (0,) * len(self.days)
        return self.counts[self.keys.index(key)]

    def totals(self) -> tuple[int, ...]:
        return tuple(sum(column) for column in zip(*self.counts, strict=True)) or (0,) * len(
            self.days
        )

    def shares(self) -> tuple[tuple[float, ...], ...]:
        """Each key's share of its day's total (0 on a day without any)."""
        totals = self.totals()
        return tuple(
            tuple(n / total if total else 0.0 for n, total in zip(row, totals, strict=True))
            for row in self.counts
        )

    @property
    def empty(self) -> bool:
        return not any(any(row) for row in self.counts)


@dataclass(frozen=True, slots=True)
class DailyDurations:
    """Per day: how many durations, their median and 90th percentile (None on a day without)."""

    days: tuple[date, ...]
    count: tuple[int, ...]
    median_s: tuple[float | None, ...]
    p90_s: tuple[float | None, ...]

    @property
    def empty(self) -> bool:
        return not any(self.count)


def count_by_day(
    days: DayRange, items: Iterable[tuple[datetime, str]], order: Sequence[str] = ()
) -> DailyCounts:
    """Count (time, key) pairs per day. Keys come in `order` first (kept even when absent, so
    colours stay put across ranges), then the others by falling total."""
    index = {day: i for i, day in enumerate(days.days())}
    per_key: dict[str, list[int]] = {key: [0] * len(index) for key in order}
    for at, key in items:
        slot = index.get(days.day_of(at))
        if slot is None:
            continue
        per_key.setdefault(key, [0] * len(index))[slot] += 1
    others = sorted((k for k in per_key if k not in order), key=lambda k: (-sum(per_key[k]), k))
    keys = (*order, *others)
    return DailyCounts(tuple(index), keys, tuple(tuple(per_key[k]) for k in keys))


def durations_by_day(days: DayRange, items: Iterable[tuple[datetime, float]]) -> DailyDurations:
    """Median and 90th percentile (nearest rank) of the durations ending on each day."""
    per_day: dict[date, list[float]] = {day: [] for day in days.days()}
    for at, seconds in items:
        bucket = per_day.get(days.day_of(at))
        if bucket is not None:
            bucket.append(seconds)
    return DailyDurations(
        tuple(per_day),
        tuple(len(v) for v in per_day.values()),
        tuple(statistics.median(v) if v else None for v in per_day.values()),
        tuple(percentile(v, 90) if v else None for v in per_day.values()),
    )


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile: the smallest value with at least p% of values at or
    below it (always one of the values, so a p90 of [1, 2, 3] is 3, never an interpolation)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
