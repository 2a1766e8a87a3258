"""Wires settings into running parts and runs them: the body of `autoreply run` and `chat`.

One process serves every configured account. Each account has its own channel, outbox
workers, moderators' chat and start-up recovery; the model, the analysis and the database are
shared. A channel that fails is restarted with back-off by its own supervisor, and its account
is reported unhealthy (`autoreply accounts list`); the other accounts keep serving.

Heavy imports (torch, transformers) happen here, inside functions, so light CLI verbs such as
`classify` and `queue` never pay for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from bot.accounts import Account
from bot.adapter_sync import AdapterSync, ClassifierLoader
from bot.analytics.topics_job import TopicsJob
from bot.channels.base import Channel
from bot.config import Settings
from bot.core import Core
from bot.domain import Mode, ReplyStyle
from bot.errors import ConfigError
from bot.events import NO_EVENTS, ServiceEvents
from bot.jobs import (
    add_draft_expiry,
    add_nightly_retrain,
    add_registry_poll,
    add_retention,
    add_topics_fit,
    crontab_trigger,
    start_scheduler,
)
from bot.moderation import ModerationService
from bot.nlp.heads import SafetyHeadPolicy
from bot.outbox import Outbox
from bot.pipeline import Analyser, Drafter, Gate, Pipeline
from bot.policy_actions import POLICY
from bot.storage import accounts as account_store
from bot.storage import migrate
from bot.storage.db import Database

if TYPE_CHECKING:
    from bot.nlp.generate import ReplyGenerator
    from bot.nlp.models import ModelHost
    from training.schedule import NightlyRunner

# (database, settings, accounts) -> the nightly retraining runner (tests give a fake child)
RetrainFactory = Callable[[Database, Settings, Sequence[Account]], "NightlyRunner"]
# (the running parts, the stop event, readiness) -> serves the dashboard until stop is set;
# readiness() is None once the service serves, else why not (bot/web/serve.py).
WebServing = Callable[
    ["Running", asyncio.Event, Callable[[], str | None]], Coroutine[object, object, None]
]

log = logging.getLogger(__name__)

DRAIN_ON_EXIT_S = 30.0
CALIBRATION_LINES = (
    "Hi, my order has not arrived yet and the tracking page has not changed for a week.",
    "Thanks so much for the quick help yesterday, the replacement works perfectly!",
    "Why was I charged twice? I want a refund today, this is ridiculous.",
    "Can I change the delivery address for my order, and do you ship to Canada?",
)
RESTART_MIN_S = 1.0
RESTART_MAX_S = 300.0


def build_gate(settings: Settings) -> Gate:
    from bot.safety.gate import SafetyGate

    return SafetyGate.from_settings(settings)


def build_analysis(settings: Settings) -> tuple[Analyser, Gate]:
    """The flat settings' classifier and the gate (tests and tools that build parts by hand)."""
    from bot.nlp.classify import LexicalClassifier

    return LexicalClassifier(settings.intent_labels), build_gate(settings)


def build_classifiers(accounts: Sequence[Account]) -> dict[str, Analyser]:
    """The lexical rules per account, one instance per distinct set of intent labels.

    Promoted classifier heads replace them through `AdapterSync` (its first poll runs before
    any channel starts, later ones follow promotions and rollbacks): one loading path.
    """
    from bot.nlp.classify import LexicalClassifier

    by_labels: dict[tuple[str, ...], Analyser] = {}
    return {
        a.name: by_labels.setdefault(a.intent_labels, LexicalClassifier(a.intent_labels))
        for a in accounts
    }


def head_loader(settings: Settings) -> ClassifierLoader:
    """How AdapterSync builds an account's classifier from its promoted heads (the rules
    alone when it has none; torch is imported only when there are heads). Heads on one base
    model share one backbone in the process."""

    def load(account: Account, heads: Mapping[str, tuple[str, str]]) -> Analyser:
        from bot.nlp.heads import load_account_classifier

        return load_account_classifier(settings, account, heads)

    return load


def load_generator(
    settings: Settings, accounts: Sequence[Account] = ()
) -> tuple[ReplyGenerator, dict[str, str]]:
    """Load the base model once, and every account's pinned adapter onto it.

    Returns the generator and, per account with a pinned adapter, the adapter's name in the
    host. Raises ModelLoadError with what to do.
    """
    import torch

    from bot.nlp.embedded import choose_model
    from bot.nlp.generate import BatchLimits, ReplyGenerator
    from bot.nlp.models import BASE_ADAPTER, ModelHost, adapter_name_for

    if settings.cpu_threads is not None:
        torch.set_num_threads(settings.cpu_threads)
    choice = choose_model(settings)
    host = ModelHost.load(
        choice.ref,
        # Drafts record a name that is the same on every machine, not a site-packages path.
        name="SmolLM2-135M-Instruct (bundled)" if choice.embedded else None,
        device=settings.device,
        max_loaded=settings.max_loaded_adapters,
        compile=settings.compile,
    )
    names: dict[str, str] = {}  # adapter directory -> name in the host
    adapters: dict[str, str] = {}
    for account in accounts:
        if account.adapter is None:
            continue
        if account.adapter not in names:
            name = adapter_name_for(account.adapter)
            if name in names.values():  # two directories with one base name
                name = f"{name}_{len(names)}"
            # Loaded now so a bad adapter stops start-up; past the cache's cap the least
            # recent are unloaded again and come back on demand.
            host.load_adapter(name, account.adapter, activate=False)
            names[account.adapter] = name
        adapters[account.name] = names[account.adapter]
    if settings.quantize == "int8":
        adapters = quantize_host(host, accounts, adapters)
    elif adapters:
        # Accounts without a pinned adapter run the base model, never another's adapter.
        for account in accounts:
            adapters.setdefault(account.name, BASE_ADAPTER)
    host.newline_tokens()  # built once here, not on the first reply
    log.info("model %s ready on %s (%s)", host.name, host.device, host.dtype)
    # Every request brings its account's style; this one only serves requests without one.
    default_style = accounts[0].style if accounts else ReplyStyle()
    limits = BatchLimits(max_rows=settings.max_batch, token_budget=settings.batch_token_budget)
    return ReplyGenerator(host, default_style, limits=limits), adapters


def quantize_host(
    host: ModelHost, accounts: Sequence[Account], adapters: dict[str, str]
) -> dict[str, str]:
    """int8 serves one model per process: the base, or the base with the one adapter that
    every drafting account pins merged in (a dynamically quantized layer cannot carry LoRA
    beside it, and per-row adapters would need exactly that). Returns the accounts' adapters
    (none: the merged model is the only one)."""
    drafting = [a for a in accounts if a.mode is not Mode.OFF]
    pinned = {adapters.get(a.name) for a in drafting}
    if len(pinned) > 1:
        listing = ", ".join(f"{a.name}: {a.adapter or 'base model'}" for a in drafting)
        raise ConfigError(
            "AUTOREPLY_QUANTIZE=int8 serves one model per process, but these accounts draft "
            f"with different adapters ({listing}); give them the same adapter, run one process "
            "per adapter, or unset AUTOREPLY_QUANTIZE"
        )
    # Calibration: what prompts look like (personas and customer-style lines).
    texts = [a.style.persona for a in drafting] + list(CALIBRATION_LINES)
    host.quantize_int8(texts)
    return {}


@dataclass
class Running:
    """The parts of a started service, for tests and the CLI to reach into."""

    db: Database
    pipeline: Pipeline
    outbox: Outbox
    channels: Sequence[Channel]
    core: Core
    moderation: ModerationService
    health: dict[str, str] = field(default_factory=dict)
    sync: AdapterSync | None = None
    retrainer: NightlyRunner | None = None
    topics: TopicsJob | None = None


class Service:
    """Starts the database, model, pipeline, outbox, scheduler and channels, in that order, and
    stops them in reverse. Channels are built by the caller (see bot/channels/registry.py), one
    per account, matched by `channel.account == account.name`."""

    def __init__(
        self,
        settings: Settings,
        accounts: Sequence[Account],
        channels: Sequence[Channel],
        *,
        drafter: Drafter | None = None,
        retrainer: RetrainFactory | None = None,
        events: ServiceEvents = NO_EVENTS,
        web: WebServing | None = None,
    ) -> None:
        self.settings = settings
        self.accounts = list(accounts)
        self.channels = list(channels)
        self._drafter = drafter
        self._retrainer = retrainer
        self._events = events  # the pipeline's observer: /metrics under `run --web`
        self._web = web
        self._serving = False
        self.running: Running | None = None
        missing = {c.account for c in self.channels} - {a.name for a in self.accounts}
        if missing:
            raise ValueError(f"channels for unknown accounts: {sorted(missing)}")
        if settings.retrain_enabled:
            crontab_trigger(settings.retrain_cron)  # a bad line fails now, not at the first night

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until every channel closed on its own (console end of input), or `stop` /
        SIGINT / SIGTERM."""
        stop = stop or asyncio.Event()
        settings = self.settings
        await asyncio.to_thread(migrate.ensure_schema, settings.database_url)
        db = Database(settings.database_url)
        await asyncio.to_thread(self._bind, db)
        drafter = self._drafter
        owned_generator = None
        batcher = None
        adapters: dict[str, str] = {}
        if drafter is None and any(a.mode is not Mode.OFF for a in self.accounts):
            from bot.nlp.batching import MicroBatcher

            owned_generator, adapters = await asyncio.to_thread(
                load_generator, settings, self.accounts
            )
            # Every channel's drafts go through one batcher: a burst shares generate calls.
            batcher = MicroBatcher(
                owned_generator,
                window_s=settings.batch_window_ms / 1000,
                max_batch=settings.max_batch,
            )
            drafter = batcher
        gate = await asyncio.to_thread(build_gate, settings)
        classifiers = await asyncio.to_thread(build_classifiers, self.accounts)
        by_name = {account.name: account for account in self.accounts}
        outbox = Outbox(
            db,
            {channel.account: channel for channel in self.channels},
            review_chats={a.name: a.review_chat_id for a in self.accounts if a.review_chat_id},
        )
        await asyncio.to_thread(outbox.recover)
        channels = {channel.account: channel for channel in self.channels}
        pipeline = Pipeline(
            db=db,
            classifier=classifiers[self.accounts[0].name],
            gate=gate,
            drafter=drafter,
            outbox=outbox,
            accounts=by_name,
            history_turns=settings.history_turns,
            classifiers=classifiers,
            adapters=adapters,
            activity=lambda incoming: channels[incoming.account].activity(incoming),
            redact_pii=settings.redact_pii,
            events=self._events,
            safety_head=SafetyHeadPolicy.from_settings(settings),
        )
        loop = asyncio.get_running_loop()

        def wake(conversation_id: int) -> bool:
            # The moderation service runs in worker threads; the outbox lives on the loop.
            loop.call_soon_threadsafe(outbox.notify, conversation_id)
            return False

        moderation = ModerationService(
            db,
            gate=lambda: gate,
            wake=wake,
            intent_labels={a.name: a.intent_labels for a in self.accounts},
            contexts={a.name: a.check_context() for a in self.accounts},
        )
        core = Core(db=db, pipeline=pipeline, outbox=outbox, moderation=moderation)
        health = Health(db)
        self.running = Running(db, pipeline, outbox, self.channels, core, moderation, health.now)
        sync = AdapterSync(
            db,
            pipeline,
            self.accounts,
            host=owned_generator.host if owned_generator is not None else None,
            load_classifier=head_loader(settings),
            quantized=settings.quantize == "int8",
        )
        await sync.poll()  # the registry's active adapters serve from the first message on
        self.running.sync = sync
        retrainer = await self._retraining(db)
        self.running.retrainer = retrainer
        scheduler = start_scheduler(outbox, db, heartbeat=health.beat)
        add_registry_poll(scheduler, sync.poll, settings.registry_poll_s)
        if settings.retention_days:
            add_retention(scheduler, db, settings.retention_days)
        if settings.queue_expiry_h:
            add_draft_expiry(
                scheduler, partial(moderation.expire_stale, POLICY), settings.queue_expiry_h
            )
        if retrainer is not None:
            add_nightly_retrain(scheduler, retrainer.run, settings.retrain_cron)
        topics = self.running.topics = topics_job(db, settings, self.accounts)
        if topics is not None:
            add_topics_fit(scheduler, topics.run, settings.topics_cron)
        _install_signal_handlers(stop)
        supervisors: list[asyncio.Task[None]] = []
        web = self._start_web(stop)
        try:
            for channel in self.channels:
                await pipeline.resume_unhandled(channel.platform, channel.account)
            await _start_all(self.channels, core, health)
            self._serving = True
            await outbox.sweep()  # after connecting: rows of a channel not ready would wait
            supervisors = [
                asyncio.create_task(_supervise(c, core, health, stop), name=f"channel-{c.account}")
                for c in self.channels
            ]
            await _until_stopped(stop, supervisors)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outbox.idle(), DRAIN_ON_EXIT_S)
        finally:
            # Stop taking messages, stop drafting (unhandled messages resume next start), then
            # let the outbox finish the sends in progress, and only then drop connections.
            self._serving = False
            if web is not None:  # the dashboard watches the same stop event
                stop.set()
                await asyncio.gather(web, return_exceptions=True)
            for task in supervisors:
                task.cancel()
            await asyncio.gather(*supervisors, return_exceptions=True)
            for channel in reversed(self.channels):
                await channel.stop()
            await pipeline.cancel_background()
            scheduler.shutdown(wait=False)
            if topics is not None:  # another process may take the fits over at once
                await asyncio.to_thread(topics.release)
            if retrainer is not None:  # terminate (or await) a training child, free the lease
                await retrainer.stop(settings.retrain_on_shutdown)
            await outbox.close()
            for channel in reversed(self.channels):
                await channel.close()
            if batcher is not None:
                await batcher.aclose()
            if owned_generator is not None:
                owned_generator.close()
            await asyncio.to_thread(health.stopped)
            db.dispose()

    def ready(self) -> str | None:
        """None once every part is up and the channels started; else what it waits for."""
        return None if self._serving else "starting: the channels are not serving yet"

    def _start_web(self, stop: asyncio.Event) -> asyncio.Task[None] | None:
        """The dashboard, in this event loop (`run --web`). If it fails, the service stops."""
        if self._web is None or self.running is None:
            return None
        task = asyncio.create_task(self._web(self.running, stop, self.ready), name="web")

        def ended(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("the dashboard stopped (%s); stopping the service", done.exception())
                stop.set()

        task.add_done_callback(ended)
        return task

    async def _retraining(self, db: Database) -> NightlyRunner | None:
        """The nightly retraining runner when it is enabled, after ending the runs a dead
        process left `running`."""
        if not self.settings.retrain_enabled:
            return None
        from training.schedule import NightlyRunner

        factory = self._retrainer or NightlyRunner
        runner = factory(db, self.settings, self.accounts)
        await runner.recover()
        return runner

    def _bind(self, db: Database) -> None:
        """Give each account's row its configured name (history follows the platform id)."""
        with db.session() as s:
            for account in self.accounts:
                account_store.bind(s, account.name, account.platform, account.handle)


def topics_job(db: Database, settings: Settings, accounts: Sequence[Account]) -> TopicsJob | None:
    """The scheduled topics fit (bot/analytics/topics_job.py), unless turned off."""
    if not settings.topics_enabled:
        return None
    return TopicsJob(
        db,
        [a.name for a in accounts],
        window_days=settings.topics_window_days,
        max_topics=settings.topics_max,
        lease_s=settings.topics_lease_s,
    )


class Health:
    """Each account's channel state, kept in memory and in the database for `accounts list`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.now: dict[str, str] = {}

    def set(self, account: str, state: str, note: str | None = None) -> None:
        """Record a channel's state. Never raises: a database blip while recording must not
        take the account's supervisor (and so the service) down with it."""
        self.now[account] = state if note is None else f"{state}: {note}"
        try:
            with self._db.session() as s:
                account_store.set_health(s, account, state, note)
        except SQLAlchemyError as exc:
            log.warning("could not record account %r as %s: %s", account, state, exc)

    def beat(self) -> None:
        """Refresh the heartbeat of every account served (a dead process goes stale)."""
        if self.now:
            with self._db.session() as s:
                account_store.heartbeat(s, list(self.now))

    def stopped(self) -> None:
        """At shutdown; an account that was down keeps why in its note."""
        for account, state in list(self.now.items()):
            self.set(account, "stopped", None if state == "ok" else f"was {state}")


async def _start_all(channels: Sequence[Channel], core: Core, health: Health) -> None:
    """Start every channel at once. With nothing able to start, stop with the first error (one
    account with a bad token fails start-up as before); otherwise the failed ones are retried
    by their supervisors while the rest serve."""
    results = await asyncio.gather(*(c.start(core) for c in channels), return_exceptions=True)
    errors: list[BaseException] = []
    for channel, result in zip(channels, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(result)
            await asyncio.to_thread(health.set, channel.account, "down", str(result)[:500])
            log.error("account %r could not start: %s", channel.account, result)
            with contextlib.suppress(Exception):
                await channel.stop()
        else:
            await asyncio.to_thread(health.set, channel.account, "ok")
    if errors and len(errors) == len(channels):
        raise errors[0]


async def _supervise(channel: Channel, core: Core, health: Health, stop: asyncio.Event) -> None:
    """Keep one account's channel running: restart it after a crash, waiting 1 s, then twice
    as long after each failure in a row (at most RESTART_MAX_S); a channel that served for a
    while starts again from 1 s."""
    loop = asyncio.get_running_loop()
    needs_start = health.now.get(channel.account) != "ok"  # it failed to start with the rest
    delay = RESTART_MIN_S if needs_start else 0.0
    while not stop.is_set():
        up_since = loop.time()
        try:
            if needs_start:
                await asyncio.sleep(delay)
                await channel.start(core)
                await asyncio.to_thread(health.set, channel.account, "ok")
                log.info("account %r is serving again", channel.account)
                up_since = loop.time()
            await channel.wait_closed()
            return  # closed on its own (the console's input ended)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  (one account's failure must not stop others)
            served = loop.time() - up_since > RESTART_MAX_S
            delay = RESTART_MIN_S if served or not delay else min(RESTART_MAX_S, delay * 2)
            log.error(
                "account %r failed (%s); restarting it in %.0f s", channel.account, exc, delay
            )
            await asyncio.to_thread(health.set, channel.account, "down", str(exc)[:500])
            with contextlib.suppress(Exception):
                await channel.stop()
            needs_start = True


async def _until_stopped(stop: asyncio.Event, supervisors: list[asyncio.Task[None]]) -> None:
    """Until `stop`, or until every channel has closed on its own."""

    async def all_closed() -> None:
        await asyncio.gather(*supervisors)

    stopper: asyncio.Future[object] = asyncio.ensure_future(stop.wait())
    everyone: asyncio.Future[object] = asyncio.ensure_future(all_closed())
    try:
        await asyncio.wait([stopper, everyone], return_when=asyncio.FIRST_COMPLETED)
        if everyone.done():
            everyone.result()  # a supervisor bug surfaces instead of a quiet, clean exit
    finally:
        stopper.cancel()
        everyone.cancel()
        await asyncio.gather(stopper, everyone, return_exceptions=True)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
