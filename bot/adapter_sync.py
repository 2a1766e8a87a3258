"""Keep a running service on the registry's active adapters, without a restart.

Every `registry_poll_s` the service reads which adapter versions are active (one indexed query;
a promotion from the CLI or the nightly job in another process shows up the same way). For an
account whose active reply adapter changed, the new weights are read from disk in a worker
thread (`ModelHost.prepare_adapter`: no lock), then put in under the generation lock, a swap of
milliseconds, and the account's next drafts use them. Requests already batched keep the adapter
they were pinned with, so nothing in flight is dropped. Classifier heads are rebuilt the same
way, off the event loop, and swapped in one assignment.

A pinned adapter in an account's config wins: such accounts are never switched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bot.accounts import Account
from bot.domain import Mode
from bot.errors import AutoreplyError
from bot.pipeline import Analyser
from bot.storage import adapters as adapter_store
from bot.storage.db import Database

if TYPE_CHECKING:
    from bot.nlp.models import ModelHost

log = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"  # bot.nlp.models.BASE_ADAPTER, without importing torch here
CLASSIFIER_KINDS = ("intent", "sentiment", "safety")

Active = Mapping[tuple[str, str], tuple[str, str]]  # (account, kind) -> (name, path)


class Switchable(Protocol):
    """What the pipeline offers for switching (see Pipeline.set_adapter / set_classifier)."""

    def set_adapter(self, account: str, adapter: str) -> None: ...

    def set_classifier(self, account: str, classifier: Analyser) -> None: ...


# (account, {kind: (name, path)}) -> the account's classifier: heads where given, rules elsewhere
ClassifierLoader = Callable[[Account, Mapping[str, tuple[str, str]]], Analyser]


@dataclass
class SyncStats:
    polls: int = 0
    reply_switches: int = 0
    head_switches: int = 0
    failures: int = 0
    last_error: str | None = None
    seen: dict[tuple[str, str], str] = field(default_factory=dict)


class AdapterSync:
    """Polls the registry and switches accounts' reply adapters and classifier heads."""

    def __init__(
        self,
        db: Database,
        pipeline: Switchable,
        accounts: Sequence[Account],
        *,
        host: ModelHost | None,
        load_classifier: ClassifierLoader | None,
        quantized: bool = False,
    ) -> None:
        self._db = db
        self._pipeline = pipeline
        self._accounts = list(accounts)
        self._host = host
        self._load_classifier = load_classifier
        self._quantized = quantized
        self._reply: dict[str, str | None] = {}
        self._heads: dict[str, dict[str, tuple[str, str]]] = {}
        self._lock = asyncio.Lock()
        self.stats = SyncStats()

    async def poll(self) -> None:
        """One look at the registry; switches what changed. Never raises: a bad adapter is
        logged and the account keeps what it had, and the next poll tries again."""
        async with self._lock:  # an interval tick must not overlap a slow load
            self.stats.polls += 1
            try:
                active = await asyncio.to_thread(self._read)
            except Exception as exc:  # noqa: BLE001 - a database blip must not stop the loop
                self._failed("reading the adapter registry", exc)
                return
            for account in self._accounts:
                await self._sync_reply(account, active)
                await self._sync_heads(account, active)

    def _read(self) -> dict[tuple[str, str], tuple[str, str]]:
        with self._db.session() as s:
            return adapter_store.active_names(s)

    async def _sync_reply(self, account: Account, active: Active) -> None:
        if self._host is None or account.mode is Mode.OFF or account.adapter is not None:
            return  # a pinned adapter wins over the registry; heads still follow it
        wanted = active.get((account.name, "reply"))
        name = wanted[0] if wanted else None
        if account.name in self._reply and self._reply[account.name] == name:
            return
        if wanted is None:
            self._pipeline.set_adapter(account.name, BASE_ADAPTER)
            self._switched(account, "reply", None)
            return
        if self._quantized:
            log.warning(
                "%s: not switching to reply adapter %s: the model runs in int8 with one adapter "
                "merged in; restart the service to serve it",
                account.name,
                name,
            )
            self._reply[account.name] = name
            return
        host = self._host
        try:
            if name not in host.adapter_names:
                prepared = await asyncio.to_thread(host.prepare_adapter, wanted[0], wanted[1])
                await asyncio.to_thread(host.install_adapter, prepared)
        except AutoreplyError as exc:
            self._failed(f"{account.name}: loading reply adapter {name}", exc)
            return
        self._pipeline.set_adapter(account.name, wanted[0])
        self._switched(account, "reply", name)

    async def _sync_heads(self, account: Account, active: Active) -> None:
        if self._load_classifier is None:
            return
        wanted = {
            kind: active[(account.name, kind)]
            for kind in CLASSIFIER_KINDS
            if (account.name, kind) in active
        }
        if account.name in self._heads and self._heads[account.name] == wanted:
            return
        if account.name not in self._heads and not wanted:
            self._heads[account.name] = {}  # the start-up classifier (rules) stays
            return
        try:
            classifier = await asyncio.to_thread(self._load_classifier, account, wanted)
        except Exception as exc:  # noqa: BLE001 - a broken head keeps the old classifier
            self._failed(f"{account.name}: loading classifier heads", exc)
            return
        self._pipeline.set_classifier(account.name, classifier)
        self._heads[account.name] = wanted
        self.stats.head_switches += 1
        names = ", ".join(f"{k}={v[0]}" for k, v in sorted(wanted.items())) or "lexical rules"
        log.info("%s: classifier now %s", account.name, names)

    def _switched(self, account: Account, kind: str, name: str | None) -> None:
        first = account.name not in self._reply
        self._reply[account.name] = name
        self.stats.seen[(account.name, kind)] = name or ""
        if first and name is None:
            return  # nothing changed: the account starts on its base model
        self.stats.reply_switches += 1
        log.info("%s: drafts now use %s", account.name, name or "the base model")

    def _failed(self, what: str, exc: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{what}: {exc}"
        log.error(
            "%s failed: %s; keeping what was in use (fix or roll back with `autoreply adapters "
            "rollback`)",
            what,
            exc,
        )

    async def run(self, interval_s: float, stop: asyncio.Event) -> None:
        """Poll every `interval_s` until `stop` is set."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                await self.poll()
