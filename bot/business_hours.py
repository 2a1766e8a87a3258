"""Business hours of an account: open on some weekdays between two local times, in an IANA
time zone (zoneinfo, so daylight-saving changes are the tz database's business, not ours).

Pure values and functions; the pipeline asks `is_open(now)` and, for the away message,
`reopened_between(last_away, now)` (was there an opening since the last away message, i.e. is
this a new absence?).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
DEFAULT_AWAY = (
    "Thanks for your message! We are away right now; a member of our team will answer when "
    "we are back."
)


class OutsideHours(StrEnum):
    """What happens to a message outside business hours."""

    REVIEW = "review"  # the draft waits for a moderator
    AUTO = "auto"  # as inside hours
    AWAY = "away"  # one away message per chat and absence, then the draft waits for review


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Open on `days` (0 = Monday) from `opens` to `closes` local time in `time_zone`.

    `closes` must be after `opens`: a span over midnight is two days' spans, which one pair of
    times cannot say, so it is refused rather than guessed.
    """

    time_zone: str
    days: frozenset[int]
    opens: time
    closes: time
    outside: OutsideHours = OutsideHours.REVIEW
    away_message: str = DEFAULT_AWAY

    def __post_init__(self) -> None:
        if not self.opens < self.closes:
            raise ValueError(
                f"business hours close ({self.closes:%H:%M}) before they open "
                f"({self.opens:%H:%M}); set closes after opens (spans over midnight are not "
                "supported)"
            )
        if not self.days or not self.days <= set(range(7)):
            raise ValueError("business days must be some of mon, tue, wed, thu, fri, sat, sun")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def is_open(self, when: datetime) -> bool:
        local = when.astimezone(self.zone)
        return local.weekday() in self.days and self.opens <= local.time() < self.closes

    def next_opening(self, after: datetime) -> datetime:
        """The first opening time strictly after `after` (aware datetime)."""
        local = after.astimezone(self.zone)
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            if day.weekday() not in self.days:
                continue
            opening = datetime.combine(day, self.opens, tzinfo=self.zone)
            if opening > local:
                return opening
        raise AssertionError("some business day falls within any eight days")

    def reopened_between(self, since: datetime, now: datetime) -> bool:
        """Was the account open at some moment after `since` (up to `now`)? Then a message at
        `now`, outside hours, belongs to a new absence."""
        return self.is_open(since) or self.next_opening(since) <= now


def parse_days(value: str) -> frozenset[int]:
    """`mon-fri`, `mon,wed,fri`, `sat-sun` or `mon-fri,sun` -> weekday numbers (0 = Monday)."""
    days: set[int] = set()
    for part in (p.strip().lower() for p in value.split(",")):
        first, _, last = part.partition("-")
        try:
            low = DAY_NAMES.index(first.strip()[:3])
            high = DAY_NAMES.index((last or first).strip()[:3])
        except ValueError:
            raise ValueError(
                f"{part!r} is not a day or a span of days; write e.g. 'mon-fri' or 'mon,wed,sat'"
            ) from None
        if high < low:
            raise ValueError(f"{part!r} runs backwards; write days Monday first, e.g. 'sat-sun'")
        days.update(range(low, high + 1))
    return frozenset(days)
