"""Each plot is a valid, self-contained SVG element with its title and legend as text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.analytics import plots
from bot.analytics.series import (
    DailyCounts,
    DailyDurations,
    DayRange,
    count_by_day,
    durations_by_day,
)

DAYS = DayRange(date(2026, 11, 1), date(2026, 11, 14))


def _counts(keys: tuple[str, ...]) -> DailyCounts:
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    items = [
        (start + timedelta(days=d), key)
        for d in range(14)
        for i, key in enumerate(keys)
        for _ in range((d + i) % 4 + 1)
    ]
    return count_by_day(DAYS, items)


def _durations() -> DailyDurations:
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    every_other_day = range(0, 14, 2)
    waits = [(start + timedelta(days=d), 30.0 * (d + i)) for d in every_other_day for i in range(5)]
    return durations_by_day(DAYS, waits)


def _check(svg: str, *labels: str) -> None:
    assert svg.startswith("<svg")
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag.endswith("svg")
    for label in labels:
        assert label in svg
    # Nothing to fetch: no images, no external fonts or stylesheets.
    assert "<image" not in svg and "@font-face" not in svg and "url(http" not in svg
    assert len(svg) < 200_000


def test_every_plot_is_inline_svg_with_its_labels() -> None:
    intents = _counts(("order_status", "refund", "greeting"))
    _check(plots.intent_plot(intents), "Intent of incoming messages", "order_status", "refund")
    _check(
        plots.sentiment_plot(_counts(("negative", "neutral", "positive"))),
        "Sentiment",
        "negative",
        "positive",
    )
    _check(plots.decision_plot(_counts(("auto", "review", "ignore"))), "Decisions", "% of messages")
    latency = plots.latency_plot(_durations())
    _check(latency, "Reply latency", "median", "90th percentile", "minutes")
    _check(
        plots.queue_plot(_durations(), _counts(("alice", "bob"))),
        "Queue wait",
        "Moderator workload",
        "alice",
        "bob",
    )


def test_same_data_same_bytes() -> None:
    intents = _counts(("a", "b"))
    assert plots.intent_plot(intents) == plots.intent_plot(intents)


def test_many_keys_are_folded_into_other() -> None:
    svg = plots.intent_plot(_counts(tuple(f"intent{i}" for i in range(10))))
    _check(svg, "other")
    assert "intent9" not in svg


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plots.intent_plot(count_by_day(DAYS, [])),
        lambda: plots.decision_plot(count_by_day(DAYS, [], ("auto",))),
        lambda: plots.latency_plot(durations_by_day(DAYS, [])),
    ],
)
def test_empty_ranges_say_so(draw: object) -> None:
    assert callable(draw)
    _check(draw(), "no data in this range")


def test_queue_plot_names_each_empty_panel() -> None:
    svg = plots.queue_plot(durations_by_day(DAYS, []), count_by_day(DAYS, []))
    _check(svg, "no drafts moderated", "no moderator actions")


def test_names_in_legends_are_text_not_markup() -> None:
    """Moderators' names are data: "$...$" is not mathtext (a malformed one would fail the
    whole page), a leading "_" does not hide the entry, and markup comes out escaped."""
    names = ("_bob (1)", "$\\frac{$ (2)", "<script>x</script>")
    svg = plots.queue_plot(_durations(), _counts(names))
    _check(svg, "_bob (1)", "$\\frac{$ (2)", "&lt;script&gt;")
    assert "<script>" not in svg
