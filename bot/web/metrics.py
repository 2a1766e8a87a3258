"""`/metrics` for Prometheus: figures read from the database on each scrape, plus counters of
what this process's pipeline did.

Every app builds its own `CollectorRegistry` (never prometheus_client's global one), so tests can
build many apps side by side. Two sources feed it:

- `DatabaseCollector` queries the database on every scrape (bot/storage/metrics_queries.py):
  messages in, decisions, queue depth, drafts, replies sent, outbox states, active adapters. A
  standalone `autoreply web` shows them, and they survive restarts.
- `PrometheusEvents` implements the pipeline's observer (bot/events.py): generation latency,
  gate verdicts and flags, messages handled and drafts made, counted since this process started.
  Only a process that handles messages (`autoreply run --web`) moves them: hand the same
  observer to the `Service` (or `Pipeline`) and to `build_metrics`.

Rendering runs database queries: call `render()` off the event loop (FastAPI runs a plain `def`
endpoint in its thread pool).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError

from bot.domain import DecisionAction, VerdictAction
from bot.events import GateStage, ServiceEvents
from bot.storage.db import Database
from bot.storage.metrics_queries import Figures, figures

log = logging.getLogger(__name__)

# Drafting on a CPU takes from a fraction of a second to a minute under load.
GENERATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


class PrometheusEvents(ServiceEvents):
    """The pipeline's events as Prometheus metrics on `registry` (a new one when None)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.generation = Histogram(
            "autoreply_generation_seconds",
            "Time from asking the drafter for a reply to getting it (micro-batching included), "
            "in this process",
            ["account"],
            buckets=GENERATION_BUCKETS,
            registry=self.registry,
        )
        self.verdicts = Counter(
            "autoreply_gate_verdicts",
            "Safety gate verdicts in this process, by stage (input: the user's message; draft: "
            "the reply chosen) and action (allow, review, block)",
            ["stage", "action"],
            registry=self.registry,
        )
        self.flags = Counter(
            "autoreply_gate_flags",
            "Safety flags raised in this process, by stage, flag and the verdict's action",
            ["stage", "flag", "action"],
            registry=self.registry,
        )
        self.handled = Counter(
            "autoreply_messages_handled",
            "Messages this process handled to a decision (ignore, auto, review)",
            ["account", "decision"],
            registry=self.registry,
        )
        self.drafted = Counter(
            "autoreply_drafts_made",
            "Drafts this process stored, by the decision on them (auto: sent without review; "
            "review: queued for moderators)",
            ["account", "decision"],
            registry=self.registry,
        )

    def generated(self, account: str, seconds: float) -> None:
        self.generation.labels(account).observe(seconds)

    def verdict(self, stage: GateStage, action: VerdictAction, flags: Sequence[str]) -> None:
        self.verdicts.labels(stage, action.value).inc()
        for flag in flags:
            self.flags.labels(stage, flag, action.value).inc()

    def decided(self, account: str, action: DecisionAction, drafted: bool) -> None:
        self.handled.labels(account, action.value).inc()
        if drafted:
            self.drafted.labels(account, action.value).inc()


class DatabaseCollector:
    """Reads the stored figures on each scrape. When the database cannot be read, the scrape
    still answers, with `autoreply_database_up 0`, and the error is logged."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def describe(self) -> Iterator[Metric]:
        # Names only (no query): lets the registry refuse a clash when it is built.
        yield _up(1)
        yield from _families(Figures(accounts=()))

    def collect(self) -> Iterator[Metric]:
        try:
            with self._db.session() as session:
                stored = figures(session)
        except SQLAlchemyError:
            log.warning("/metrics could not read the database; is it reachable?", exc_info=True)
            yield _up(0)
            return
        yield _up(1)
        yield from _families(stored)


def _up(value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "autoreply_database_up",
        "1 when this scrape read the stored figures from the database, 0 when it failed",
        value=value,
    )


def _families(f: Figures) -> Iterator[Metric]:
    messages_in = CounterMetricFamily(
        "autoreply_messages_in", "Inbound messages stored, per account", labels=["account"]
    )
    unhandled = GaugeMetricFamily(
        "autoreply_messages_unhandled",
        "Inbound messages stored but not decided yet (in progress, or left by a crash)",
        labels=["account"],
    )
    for account in f.accounts:
        messages_in.add_metric([account], f.messages_in.get(account, 0))
        unhandled.add_metric([account], f.unhandled.get(account, 0))
    decisions = CounterMetricFamily(
        "autoreply_decisions",
        "Stored inbound messages by the pipeline's decision (ignore, auto, review)",
        labels=["account", "decision"],
    )
    for (account, decision), n in sorted(f.decisions.items()):
        decisions.add_metric([account, decision], n)
    queue = GaugeMetricFamily(
        "autoreply_queue_depth", "Drafts waiting for a moderator, per account", labels=["account"]
    )
    sent = CounterMetricFamily(
        "autoreply_replies_sent",
        "Replies delivered in users' chats (outbox rows of kind reply, sent)",
        labels=["account"],
    )
    for account in f.accounts:
        queue.add_metric([account], f.queue_depth(account))
        sent.add_metric([account], f.replies_sent(account))
    drafts = GaugeMetricFamily(
        "autoreply_drafts",
        "Stored drafts by status (queued, approved, edited, rejected, sent, failed, expired)",
        labels=["account", "status"],
    )
    for (account, status), n in sorted(f.drafts.items()):
        drafts.add_metric([account, status], n)
    outbox = GaugeMetricFamily(
        "autoreply_outbox",
        "Outbox rows by kind (reply, card, notice) and state (pending, sending, sent, failed, "
        "unknown, cancelled)",
        labels=["account", "kind", "status"],
    )
    for (account, kind, status), n in sorted(f.outbox.items()):
        outbox.add_metric([account, kind, status], n)
    adapters = GaugeMetricFamily(
        "autoreply_adapter_version",
        "Version number of the active adapter per account and kind (reply, intent, ...)",
        labels=["account", "kind", "adapter"],
    )
    for adapter in f.adapters:
        adapters.add_metric([adapter.account, adapter.kind, adapter.name], adapter.version)
    yield from (messages_in, unhandled, decisions, queue, sent, drafts, outbox, adapters)


@dataclass(frozen=True)
class Metrics:
    """One app's metrics: its own registry and the pipeline observer that feeds it."""

    registry: CollectorRegistry
    events: PrometheusEvents

    def render(self) -> tuple[bytes, str]:
        """The body and content type of a `/metrics` answer (runs the database queries)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def build_metrics(db: Database, events: PrometheusEvents | None = None) -> Metrics:
    """One app's registry: the database figures, the pipeline's events and process stats.

    `events`: the observer already handed to the service's pipeline, for `run --web`, where the
    pipeline is built before the app (`PrometheusEvents()`, then `Service(..., events=...)`,
    then `build_metrics(running.db, events)`); once per observer. None: a fresh registry whose
    event counters stay at zero unless `Metrics.events` is given to a pipeline.
    """
    events = events if events is not None else PrometheusEvents()
    events.registry.register(DatabaseCollector(db))
    ProcessCollector(registry=events.registry)
    return Metrics(events.registry, events)
