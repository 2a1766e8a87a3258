"""`/metrics` figures: stored figures read back from the database on both backends, the
pipeline's in-process counters with the real pipeline and a tiny model, and one registry per app.

Everything is parsed back from the exposition text, as Prometheus would read it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bot.accounts import Account
from bot.config import Settings
from bot.domain import ChatKind, Decision, DecisionAction, Incoming, Mode, ReplyStyle
from bot.nlp.generate import ReplyGenerator
from bot.nlp.models import ModelHost
from bot.outbox import Outbox
from bot.pipeline import Drafter, Pipeline
from bot.service import Service, build_analysis
from bot.storage import adapters as adapter_store
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema
from bot.web.metrics import Metrics, PrometheusEvents, build_metrics
from tests.fakes import CannedDrafter, RecordingChannel, account

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(metrics: Metrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when the series is absent (a counter nobody touched yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def _pipeline(
    db: Database, drafter: Drafter, metrics: Metrics, *accounts: Account
) -> tuple[Pipeline, Outbox]:
    classifier, gate = build_analysis(Settings(database_url=db.url))
    outbox = Outbox(db, {a.name: RecordingChannel(account=a.name) for a in accounts})
    pipeline = Pipeline(
        db=db,
        classifier=classifier,
        gate=gate,
        drafter=drafter,
        outbox=outbox,
        accounts={a.name: a for a in accounts},
        history_turns=6,
        events=metrics.events,
    )
    return pipeline, outbox


def _msg(acct: str, n: int, text: str, **kw: object) -> Incoming:
    return Incoming(
        platform="console",
        account=acct,
        chat_id=str(kw.pop("chat", "c1")),
        message_id=str(n),
        user_id=f"u{n}",
        user_name="Dana",
        text=text,
        **kw,  # type: ignore[arg-type]
    )


def test_stored_figures_are_read_from_the_database(migrated_db: Database) -> None:
    metrics = build_metrics(migrated_db)
    pipeline, outbox = _pipeline(
        migrated_db,
        CannedDrafter(),
        metrics,
        account("shop", mode=Mode.AUTO),
        account("help", mode=Mode.REVIEW_ALL),
    )

    async def go() -> list[DecisionAction]:
        decisions = [
            await pipeline.handle(_msg("shop", 1, "hello there")),
            await pipeline.handle(_msg("shop", 2, "where is my order #1234?")),
            await pipeline.handle(
                _msg(
                    "shop",
                    3,
                    "anyone seen the blue one?",
                    chat_kind=ChatKind.GROUP,
                    chat="g1",
                    addressed=False,
                )
            ),
            await pipeline.handle(_msg("help", 1, "hi, can you help me?")),
            await pipeline.handle(_msg("help", 2, "my parcel is late", chat="c2")),
        ]
        await outbox.idle()
        await outbox.close()
        return [d.action for d in decisions]

    auto, review, ignore = DecisionAction.AUTO, DecisionAction.REVIEW, DecisionAction.IGNORE
    assert asyncio.run(go()) == [auto, auto, ignore, review, review]
    with migrated_db.session() as s:
        version = adapter_store.register(
            s,
            account="shop",
            kind="reply",
            version=1,
            path=Path("/adapters/shop-reply-v1"),
            base_model="tiny",
            data_hash=None,
            config={},
            metrics={},
        )
        adapter_store.promote(s, version.name)

    got = _samples(metrics)

    assert _value(got, "autoreply_database_up") == 1
    assert _value(got, "autoreply_messages_in_total", account="shop") == 3
    assert _value(got, "autoreply_messages_in_total", account="help") == 2
    assert _value(got, "autoreply_messages_unhandled", account="shop") == 0
    assert _value(got, "autoreply_decisions_total", account="shop", decision="auto") == 2
    assert _value(got, "autoreply_decisions_total", account="shop", decision="ignore") == 1
    assert _value(got, "autoreply_decisions_total", account="help", decision="review") == 2
    # Every account shows a queue depth and a sent count, zero included.
    assert ("autoreply_queue_depth", frozenset({("account", "shop")})) in got
    assert _value(got, "autoreply_queue_depth", account="shop") == 0
    assert _value(got, "autoreply_queue_depth", account="help") == 2
    assert _value(got, "autoreply_replies_sent_total", account="shop") == 2
    assert _value(got, "autoreply_replies_sent_total", account="help") == 0
    assert _value(got, "autoreply_drafts", account="shop", status="sent") == 2
    assert _value(got, "autoreply_drafts", account="help", status="queued") == 2
    assert _value(got, "autoreply_outbox", account="shop", kind="reply", status="sent") == 2
    assert (
        _value(got, "autoreply_adapter_version", account="shop", kind="reply", adapter=version.name)
        == 1
    )
    # The same process handled them: its own counters agree with the stored figures.
    assert _value(got, "autoreply_messages_handled_total", account="shop", decision="auto") == 2
    assert _value(got, "autoreply_messages_handled_total", account="shop", decision="ignore") == 1
    assert _value(got, "autoreply_drafts_made_total", account="help", decision="review") == 2
    assert _value(got, "autoreply_drafts_made_total", account="shop", decision="ignore") == 0
    assert _value(got, "autoreply_generation_seconds_count", account="shop") == 2
    assert _value(got, "autoreply_gate_verdicts_total", stage="draft", action="allow") == 4


def test_counters_move_when_the_real_pipeline_handles_a_message(
    migrated_db: Database, tiny_host: ModelHost
) -> None:
    metrics = build_metrics(migrated_db)
    style = ReplyStyle(max_new_tokens=8, seed=7)
    generator = ReplyGenerator(tiny_host, style)
    acct = replace(account("acct", mode=Mode.REVIEW_ALL), style=style)
    pipeline, outbox = _pipeline(migrated_db, generator, metrics, acct)
    before = _samples(metrics)

    async def go() -> Decision:
        decision = await pipeline.handle(
            _msg("acct", 1, "where is my parcel? write to jane.doe@example.com")
        )
        await outbox.close()
        return decision

    try:
        decision = asyncio.run(go())
    finally:
        generator.close()
    after = _samples(metrics)

    assert decision.action is DecisionAction.REVIEW and decision.draft_id is not None
    for name, labels in [
        ("autoreply_messages_in_total", {"account": "acct"}),
        ("autoreply_decisions_total", {"account": "acct", "decision": "review"}),
        ("autoreply_queue_depth", {"account": "acct"}),
        ("autoreply_messages_handled_total", {"account": "acct", "decision": "review"}),
        ("autoreply_drafts_made_total", {"account": "acct", "decision": "review"}),
        ("autoreply_generation_seconds_count", {"account": "acct"}),
        ("autoreply_gate_flags_total", {"stage": "input", "flag": "pii_email", "action": "review"}),
    ]:
        assert _value(after, name, **labels) == _value(before, name, **labels) + 1, name
    assert _value(after, "autoreply_generation_seconds_sum", account="acct") > 0
    assert _value(after, "autoreply_generation_seconds_bucket", account="acct", le="+Inf") == 1
    verdicts = [
        _value(after, "autoreply_gate_verdicts_total", stage=stage, action=action)
        for stage in ("input", "draft")
        for action in ("allow", "review", "block")
    ]
    assert sum(verdicts) == 2  # one for the message, one for the draft


def test_two_apps_keep_their_own_registries(sqlite_url: str) -> None:
    ensure_schema(sqlite_url)
    db = Database(sqlite_url)
    try:
        first, second = build_metrics(db), build_metrics(db)
        first.events.decided("acct", DecisionAction.AUTO, drafted=True)
        first.events.generated("acct", 0.5)
        one, two = _samples(first), _samples(second)
    finally:
        db.dispose()
    assert _value(one, "autoreply_messages_handled_total", account="acct", decision="auto") == 1
    assert _value(two, "autoreply_messages_handled_total", account="acct", decision="auto") == 0
    assert _value(one, "autoreply_generation_seconds_count", account="acct") == 1
    assert _value(two, "autoreply_generation_seconds_count", account="acct") == 0
    assert _value(one, "autoreply_database_up") == _value(two, "autoreply_database_up") == 1


def test_an_unreadable_database_still_answers_with_up_zero(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'autoreply.db'}")
    try:
        got = _samples(build_metrics(db))
    finally:
        db.dispose()
    assert _value(got, "autoreply_database_up") == 0
    assert not [name for name, _ in got if name.startswith("autoreply_queue_depth")]


def test_a_service_given_the_events_moves_the_counters(sqlite_url: str, tmp_path: Path) -> None:
    """The `run --web` wiring: the observer is handed to the service before it builds its
    pipeline, and to `build_metrics` once the service's database is there."""
    events = PrometheusEvents()
    settings = Settings(database_url=sqlite_url, adapters_dir=tmp_path / "adapters")
    channel = RecordingChannel(account="acct")
    service = Service(
        settings, [account("acct")], [channel], drafter=CannedDrafter(), events=events
    )

    async def scenario() -> tuple[Decision, Samples]:
        stop = asyncio.Event()
        serving = asyncio.create_task(service.run(stop))
        try:
            for _ in range(1200):
                if getattr(channel, "core", None) is not None:  # started: taking messages
                    break
                await asyncio.sleep(0.025)
            assert service.running is not None, "the service did not start in 30 s"
            metrics = build_metrics(service.running.db, events)
            decision = await service.running.core.handle(_msg("acct", 1, "hello there"))
            await asyncio.wait_for(service.running.outbox.idle(), 30)
            # A scrape runs its queries off the loop, as FastAPI runs a plain `def` endpoint.
            return decision, await asyncio.to_thread(_samples, metrics)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 60)

    decision, got = asyncio.run(scenario())
    assert decision.action is DecisionAction.AUTO
    assert _value(got, "autoreply_messages_handled_total", account="acct", decision="auto") == 1
    assert _value(got, "autoreply_generation_seconds_count", account="acct") == 1
    assert _value(got, "autoreply_gate_verdicts_total", stage="draft", action="allow") == 1
    assert _value(got, "autoreply_replies_sent_total", account="acct") == 1
    assert _value(got, "autoreply_messages_in_total", account="acct") == 1
    assert [sent.message.text for sent in channel.sent] == [CannedDrafter.text]
