"""Wires settings into running parts and runs them: the body of `autoreply run` and `chat`.

Heavy imports (torch, transformers) happen here, inside functions, so light CLI verbs such as
`classify` and `queue` never pay for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.channels.base import Channel
from bot.config import Settings
from bot.core import Core
from bot.domain import Mode
from bot.jobs import start_scheduler
from bot.outbox import Outbox
from bot.pipeline import Analyser, Drafter, Gate, Pipeline
from bot.storage import migrate
from bot.storage.db import Database

if TYPE_CHECKING:
    from bot.nlp.generate import ReplyGenerator

log = logging.getLogger(__name__)

DRAIN_ON_EXIT_S = 30.0


def build_analysis(settings: Settings) -> tuple[Analyser, Gate]:
    from bot.nlp.classify import LexicalClassifier
    from bot.safety.gate import SafetyGate

    return LexicalClassifier(settings.intent_labels), SafetyGate.from_settings(settings)


def load_generator(settings: Settings) -> ReplyGenerator:
    """Load the base model (and adapter) once. Raises ModelLoadError with what to do."""
    from bot.nlp.generate import GenerationParams, ReplyGenerator
    from bot.nlp.models import ModelHost

    host = ModelHost.load(settings.model, device=settings.device, adapter=settings.adapter)
    log.info("model %s ready on %s (%s)", host.name, host.device, host.dtype)
    return ReplyGenerator(host, GenerationParams.from_settings(settings))


@dataclass
class Running:
    """The parts of a started service, for tests and the CLI to reach into."""

    db: Database
    pipeline: Pipeline
    outbox: Outbox
    channels: Sequence[Channel]
    core: Core


class Service:
    """Starts the database, model, pipeline, outbox, scheduler and channels, in that order, and
    stops them in reverse. Channels are built by the caller (see bot/channels/registry.py)."""

    def __init__(
        self,
        settings: Settings,
        channels: Sequence[Channel],
        *,
        drafter: Drafter | None = None,
    ) -> None:
        self.settings = settings
        self.channels = list(channels)
        self._drafter = drafter
        self.running: Running | None = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until a channel closes (console end of input) or `stop` / SIGINT / SIGTERM."""
        stop = stop or asyncio.Event()
        settings = self.settings
        await asyncio.to_thread(migrate.ensure_schema, settings.database_url)
        db = Database(settings.database_url)
        drafter = self._drafter
        owned_generator = None
        if drafter is None and settings.mode is not Mode.OFF:
            owned_generator = await asyncio.to_thread(load_generator, settings)
            drafter = owned_generator
        classifier, gate = await asyncio.to_thread(build_analysis, settings)
        review_chats = {c.platform: c.review_chat_id for c in self.channels if c.review_chat_id}
        outbox = Outbox(
            db, {channel.platform: channel for channel in self.channels}, review_chats=review_chats
        )
        await asyncio.to_thread(outbox.recover)
        by_platform = {channel.platform: channel for channel in self.channels}
        pipeline = Pipeline(
            db=db,
            classifier=classifier,
            gate=gate,
            drafter=drafter,
            outbox=outbox,
            default_mode=settings.mode,
            history_turns=settings.history_turns,
            review_chats={c.platform: c.review_chat_id for c in self.channels if c.review_chat_id},
            cooldowns={c.platform: c.cooldown_s for c in self.channels},
            activity=lambda incoming: by_platform[incoming.platform].activity(incoming),
        )
        core = Core(db=db, pipeline=pipeline, outbox=outbox)
        self.running = Running(db, pipeline, outbox, self.channels, core)
        scheduler = start_scheduler(outbox, db)
        _install_signal_handlers(stop)
        started: list[Channel] = []
        try:
            for channel in self.channels:
                await pipeline.resume_unhandled(channel.platform, channel.account)
            await outbox.sweep()
            for channel in self.channels:
                await channel.start(core)
                started.append(channel)
            await _until_first(stop, [channel.wait_closed() for channel in started])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outbox.idle(), DRAIN_ON_EXIT_S)
        finally:
            # Stop taking messages, stop drafting (unhandled messages resume next start), then
            # let the outbox finish the sends in progress, and only then drop connections.
            for channel in reversed(started):
                await channel.stop()
            await pipeline.cancel_background()
            scheduler.shutdown(wait=False)
            await outbox.close()
            for channel in reversed(started):
                await channel.close()
            if owned_generator is not None:
                owned_generator.close()
            db.dispose()


async def _until_first(stop: asyncio.Event, waits: list[Coroutine[Any, Any, None]]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper:
                task.result()  # surface a channel crash
    finally:
        for task in [stopper, *tasks]:
            task.cancel()
        await asyncio.gather(stopper, *tasks, return_exceptions=True)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
