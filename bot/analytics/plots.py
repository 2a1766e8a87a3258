"""The analytics plots as inline SVG strings: one pure function per plot, data in, text out.

matplotlib's object API (a `Figure`, no pyplot) keeps no figure registry; the style is applied
with `rc_context`, which changes matplotlib's global rcParams, so one plot is drawn at a time
(a lock) and any worker thread may call these functions. Text stays text in the SVG
(`svg.fonttype: none`): the page's own font shows it, nothing is embedded, nothing fetched.
Ids are salted with a constant and the date metadata dropped, so the same data gives the same
bytes (an ETag or cache key holds).
"""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, ParamSpec

import matplotlib

matplotlib.use("Agg")  # before any figure: never a GUI backend in a server

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.analytics.series import DailyCounts, DailyDurations

SIZE_IN = (7.0, 2.6)  # wide and short: a dashboard row
STYLE: dict[Any, Any] = {  # Any: matplotlib types the keys as a Literal of every rc name
    "svg.fonttype": "none",
    "svg.hashsalt": "autoreply",
    "font.family": "sans-serif",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "legend.fontsize": 7,
    "legend.frameon": False,
}
# Colour-blind-safe (Okabe-Ito); fixed per meaning where there is one.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#999999")
MEANING_COLOURS = {
    "negative": "#D55E00",
    "neutral": "#999999",
    "positive": "#009E73",
    "auto": "#009E73",
    "review": "#E69F00",
    "ignore": "#999999",
}
DAY_LABELS = 6
Y_LEVELS = 4  # each tick costs about a millisecond of layout
MAX_KEYS = 7  # more series than this are summed into "other"
# Fixed margins in figure fractions; the right one leaves room for the legend.
MARGINS = {"left": 0.08, "right": 0.8, "top": 0.88, "bottom": 0.14}
CACHED = 64  # pictures per plot kind; a 30-day SVG is 20-40 KiB
P = ParamSpec("P")
_DRAWING = threading.Lock()
_CACHES: list[functools._lru_cache_wrapper[str]] = []


def _styled(plot: Callable[P, str]) -> Callable[P, str]:
    """Draw under the style, one plot at a time (rcParams are process-wide), and remember
    the last CACHED pictures: the series are frozen and hashable, so a page reloaded on
    unchanged data costs no drawing (about 30 ms a plot otherwise)."""

    @functools.wraps(plot)
    def draw(*args: P.args, **kwargs: P.kwargs) -> str:
        with _DRAWING, rc_context(STYLE):
            return plot(*args, **kwargs)

    cached = functools.lru_cache(maxsize=CACHED)(draw)
    _CACHES.append(cached)
    return cached  # type: ignore[return-value]  # lru_cache's wrapper keeps the signature


@_styled
def intent_plot(intents: DailyCounts) -> str:
    """Messages per day, stacked by intent."""
    return _stacked(intents, "Intent of incoming messages", "messages")


@_styled
def sentiment_plot(sentiments: DailyCounts) -> str:
    """Messages per day, stacked by sentiment."""
    return _stacked(sentiments, "Sentiment of incoming messages", "messages")


@_styled
def decision_plot(decisions: DailyCounts) -> str:
    """Each day's shares of auto, review and ignore, stacked to 100%."""
    fig, ax = _figure("Decisions: auto / review / ignore")
    if decisions.empty:
        return _no_data(fig, ax)
    percent = tuple(tuple(100 * share for share in row) for row in decisions.shares())
    _stack_days(ax, decisions.keys, percent)
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of messages")
    _day_axis(ax, decisions.days)
    return _svg(fig)


@_styled
def latency_plot(latency: DailyDurations) -> str:
    """Median and 90th percentile of the time from a message to its first reply, per day."""
    fig, ax = _figure("Reply latency (message to reply sent)")
    if latency.empty:
        return _no_data(fig, ax)
    _duration_lines(ax, latency)
    _day_axis(ax, latency.days)
    return _svg(fig)


@_styled
def queue_plot(wait: DailyDurations, workload: DailyCounts) -> str:
    """Two panels: how long drafts waited for a moderator, and actions per moderator per day."""
    fig = Figure(figsize=(SIZE_IN[0], SIZE_IN[1] * 2))
    fig.subplots_adjust(**{**MARGINS, "bottom": MARGINS["bottom"] / 2, "hspace": 0.35})
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.set_title("Queue wait (draft to moderator's decision)")
    if wait.empty:
        _note(top, "no drafts moderated in this range")
    else:
        _duration_lines(top, wait)
    bottom.set_title("Moderator workload (actions per day)")
    if workload.empty:
        _note(bottom, "no moderator actions in this range")
    else:
        shown = _top_keys(workload)
        _stack_days(bottom, shown.keys, shown.counts)
        bottom.set_ylabel("actions")
    _day_axis(bottom, workload.days)
    return _svg(fig)


# --- drawing helpers --------------------------------------------------------------------
# Day i spans [i, i + 1) on the x axis. Stacks are drawn as one stepped area per key (a
# polygon each) rather than a bar per day and key: the same picture, a tenth of the artists,
# which is most of matplotlib's time. Margins are fixed: constrained layout would measure
# every text twice per plot.


def _stacked(counts: DailyCounts, title: str, unit: str) -> str:
    fig, ax = _figure(title)
    if counts.empty:
        return _no_data(fig, ax)
    shown = _top_keys(counts)
    _stack_days(ax, shown.keys, shown.counts)
    ax.set_ylabel(unit)
    _day_axis(ax, counts.days)
    return _svg(fig)


def _stack_days(ax: Axes, keys: Sequence[str], rows: Sequence[Sequence[float]]) -> None:
    edges = list(range(len(rows[0]) + 1))
    bottom = [0.0] * len(edges)
    handles = []
    for i, (key, row) in enumerate(zip(keys, rows, strict=True)):
        top = [b + v for b, v in zip(bottom, [*row, row[-1]], strict=True)]
        handles.append(
            ax.fill_between(edges, bottom, top, step="post", color=_colour(key, i), linewidth=0)
        )
        bottom = top
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=Y_LEVELS))
    # The labels are data (moderators' names, intents): passed explicitly so that a name
    # starting with "_" is not dropped, and never read as mathtext ("$...$" would not draw).
    legend = ax.legend(handles, list(keys), loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for text in legend.get_texts():
        text.set_parse_math(False)


def _duration_lines(ax: Axes, durations: DailyDurations) -> None:
    x = [i + 0.5 for i in range(len(durations.days))]
    scale, unit = _time_unit(max(v for v in durations.p90_s if v is not None))
    for label, values, colour in (
        ("median", durations.median_s, PALETTE[0]),
        ("90th percentile", durations.p90_s, PALETTE[3]),
    ):
        # Days without data are gaps (NaN), not zeros: nothing happened, nobody waited 0 s.
        ys = [v / scale if v is not None else float("nan") for v in values]
        ax.plot(x, ys, marker="o", markersize=3, linewidth=1.2, label=label, color=colour)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=Y_LEVELS))
    ax.set_ylabel(unit)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _time_unit(largest_s: float) -> tuple[float, str]:
    if largest_s >= 2 * 3600:
        return 3600.0, "hours"
    if largest_s >= 2 * 60:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _top_keys(counts: DailyCounts) -> DailyCounts:
    """At most MAX_KEYS series: the rest summed as "other" (keys come largest first)."""
    if len(counts.keys) <= MAX_KEYS:
        return counts
    kept = counts.counts[: MAX_KEYS - 1]
    rest = tuple(sum(col) for col in zip(*counts.counts[MAX_KEYS - 1 :], strict=True))
    return DailyCounts(counts.days, (*counts.keys[: MAX_KEYS - 1], "other"), (*kept, rest))


def _colour(key: str, i: int) -> str:
    return MEANING_COLOURS.get(key, PALETTE[i % len(PALETTE)])


def _day_axis(ax: Axes, days: Sequence[date]) -> None:
    """Day labels under each day's middle, about six of them (every tick costs about a
    millisecond to lay out)."""
    step = max(1, -(-len(days) // DAY_LABELS))
    ticks = list(range(0, len(days), step))
    ax.set_xticks([i + 0.5 for i in ticks], [days[i].strftime("%b %d") for i in ticks])
    ax.set_xlim(0, len(days))


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=SIZE_IN)
    fig.subplots_adjust(**MARGINS)
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def _no_data(fig: Figure, ax: Axes) -> str:
    _note(ax, "no data in this range")
    return _svg(fig)


def _svg(fig: Figure) -> str:
    """The figure as an <svg> element for inlining in HTML (no XML prolog or DOCTYPE)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def clear_cache() -> None:
    """Forget the remembered pictures (benchmarks; memory)."""
    for cache in _CACHES:
        cache.cache_clear()
