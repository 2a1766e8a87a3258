"""The nightly retraining runner: export, then train, evaluate and maybe promote in a subprocess.

One run, for each drafting account in turn:

1. export the account's moderated history (`training.export.export_account`, in a thread);
2. with fewer than `retrain_min_examples` new examples since the last trained run, end the run
   as skipped (recorded, so `autoreply train runs` shows why a night passed quietly);
3. otherwise start `python -m training.nightly` (training/nightly.py) for the account. It runs
   niced, on `retrain_threads` threads, in its own process group, so replies keep flowing on a
   small machine; it trains a candidate, lets the eval gate decide, and records the outcome.
   Promotion is the gate's last step, so a child that fails or is stopped changes no active
   adapter.

The whole run holds the lease "retrain" (bot/storage/leases.py), renewed every ttl/3 while it
works: with several processes (or `autoreply train nightly` by hand) only one trains at a time.
A runner that cannot renew (it stalled past the expiry and someone else took over) stops its
child and marks the run aborted. `stop()` is the service's shutdown path: terminate the child
(SIGTERM, SIGKILL after a grace period) or, with retrain_on_shutdown="finish", wait for it;
either way no child outlives the service and no run stays `running`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from bot.accounts import Account
from bot.config import Settings
from bot.domain import Mode
from bot.storage import leases
from bot.storage import training_runs as runs
from bot.storage.db import Database
from training.child import (
    TERMINATE_GRACE_S,
    ChildCommand,
    ChildJob,
    child_env,
    nightly_command,
    run_child,
    tail,
)

__all__ = [
    "LEASE",
    "ChildCommand",
    "ChildJob",
    "Exported",
    "NightlyRunner",
    "Outcome",
    "export_with",
    "nightly_command",
]

log = logging.getLogger(__name__)

LEASE = "retrain"
KIND = "reply"
ShutdownMode = Literal["terminate", "finish"]
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Exported:
    """What the export step hands on: where the data is, and how many of its SFT examples are
    new (from drafts after `last_draft_id` of the last trained run)."""

    data: Path
    examples: int
    new_examples: int
    last_draft_id: int | None
    data_hash: str | None


# (account, folder to write, newest draft id the last trained run saw) -> Exported
Exporter = Callable[[Account, Path, int | None], Exported]


def export_with(db: Database, settings: Settings) -> Exporter:
    """The real export step (training/export.py), imported when first used. The whole history
    is exported (training uses all of it); "new" counts the SFT rows past `after`."""

    def run(account: Account, out_dir: Path, after: int | None) -> Exported:
        from training.export import export_account

        result = export_account(db, settings, account.name, out_dir)
        drafts = _sft_draft_ids(result.files.get("sft.jsonl"))
        new = [d for d in drafts if after is None or d > after]
        return Exported(
            out_dir, len(drafts), len(new), max(drafts, default=after), result.data_hash
        )

    return run


def _sft_draft_ids(path: Path | None) -> list[int]:
    if path is None or not path.is_file():
        return []
    with path.open(encoding="utf-8") as rows:
        return [int(json.loads(line)["source"]["draft_id"]) for line in rows if line.strip()]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One account's result in a nightly run. `status`: succeeded, failed, aborted, skipped."""

    account: str
    run_id: int | None
    status: str
    detail: str


class NightlyRunner:
    """Runs the nightly retraining once per `run()`; `stop()` ends it for a shutdown.

    `command` builds the child's argv (tests pass a tiny script); `exporter` defaults to the
    real export. One runner per process; `run()` calls never overlap (the scheduler's
    max_instances=1 and the lease see to that).
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        accounts: Sequence[Account],
        *,
        command: ChildCommand = nightly_command,
        exporter: Exporter | None = None,
        holder: str | None = None,
        grace_s: float = TERMINATE_GRACE_S,
    ) -> None:
        self.db = db
        self.settings = settings
        self.accounts = list(accounts)
        self.command = command
        self.exporter = exporter or export_with(db, settings)
        self.holder = holder or leases.new_holder("retrain")
        self.grace_s = grace_s
        self.child_pid: int | None = None  # the training subprocess now running, if any
        self._stopping = False
        self._lost = False
        self._kill = asyncio.Event()  # stop the child now (shutdown or lease lost)
        self._task: asyncio.Task[object] | None = None  # the run() in progress

    # --- the service's hooks --------------------------------------------------------------

    async def recover(self) -> list[int]:
        """At start: abort runs left `running` by a process that died (its lease lapsed)."""
        stale = await asyncio.to_thread(self._in_session, runs.abort_stale, LEASE)
        if stale:
            log.warning(
                "marked %d training run(s) left running by a dead process as aborted: %s",
                len(stale),
                stale,
            )
        return stale

    async def stop(self, mode: ShutdownMode = "terminate") -> None:
        """Shut down: no new run starts; a running child is terminated (its run is marked
        aborted), or with mode="finish" awaited; returns once the lease is released."""
        self._stopping = True
        task = self._task
        if task is None or task is asyncio.current_task():
            return
        if mode == "terminate":
            self._kill.set()
        else:
            log.info("waiting for the nightly training to finish (retrain_on_shutdown=finish)")
        await asyncio.wait({task})  # its outcome is its caller's; here only that it ended

    # --- one nightly run ------------------------------------------------------------------

    async def run(self, only: str | None = None) -> list[Outcome] | None:
        """Retrain every drafting account (or just `only`) once, under the lease. None when
        it did not start: another process holds the lease, or this runner is stopping."""
        if self._stopping or self._task is not None:
            return None
        # Set before the first await, so a stop() from now on reaches this run. A new Event
        # per run: an asyncio.Event belongs to the loop it was first awaited on.
        self._task = asyncio.current_task()
        self._kill = asyncio.Event()
        self._lost = False
        try:
            return await self._under_lease(only)
        finally:
            self._task = None

    async def _under_lease(self, only: str | None) -> list[Outcome] | None:
        ttl = self.settings.retrain_lease_s
        if not await asyncio.to_thread(self._in_session, leases.acquire, LEASE, self.holder, ttl):
            other = await asyncio.to_thread(self._in_session, leases.holder, LEASE)
            log.info("nightly retraining skipped: %s holds the lease and is running it", other)
            return None
        heartbeat = asyncio.create_task(self._heartbeat(ttl), name="retrain-lease")
        try:
            # Holding the lease, any run still `running` under it belongs to a dead runner.
            await asyncio.to_thread(self._in_session, runs.abort_stale, LEASE)
            outcomes = []
            for account in self._accounts(only):
                if self._stopping or self._lost:
                    break
                outcomes.append(await self._one(account))
            return outcomes
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            await asyncio.to_thread(self._release)

    def _accounts(self, only: str | None) -> list[Account]:
        chosen = [a for a in self.accounts if a.mode is not Mode.OFF and only in (None, a.name)]
        if only is not None and not chosen:
            log.warning("no drafting account named %r to retrain", only)
        return chosen

    async def _one(self, account: Account) -> Outcome:
        params = {
            "lease": LEASE,
            "holder": self.holder,
            "trigger": "nightly",
            "threads": self.settings.retrain_threads,
            "nice": self.settings.retrain_nice,
        }
        run_id = await asyncio.to_thread(
            self._in_session, runs.start, account=account.name, kind=KIND, params=params
        )
        try:
            ready = await self._prepare(account, run_id)
            if isinstance(ready, Outcome):
                return ready
            return await self._train(account, run_id, ready)
        except asyncio.CancelledError:
            await asyncio.to_thread(
                self._in_session, runs.abort, run_id, "cancelled (the process was stopped)"
            )
            raise
        except Exception as exc:  # recorded on the run; the next account goes on
            log.exception("nightly retraining of %r broke", account.name)
            return await self._end_failed(account, run_id, f"{type(exc).__name__}: {exc}")

    async def _prepare(self, account: Account, run_id: int) -> Exported | Outcome:
        """Export; end the run here when it failed or there is too little new data."""
        out_dir = self.settings.exports_dir / account.name / f"nightly-{run_id}"
        last = await asyncio.to_thread(self._in_session, runs.last_trained, account.name, KIND)
        after = last.params.get("last_draft_id") if last is not None else None
        try:
            exported = await asyncio.to_thread(self.exporter, account, out_dir, after)
        except Exception as exc:  # recorded on the run; the next account goes on
            log.exception("export for %r failed", account.name)
            return await self._end_failed(account, run_id, f"export failed: {exc}")
        await asyncio.to_thread(
            self._in_session,
            runs.add_params,
            run_id,
            data=str(exported.data),
            data_hash=exported.data_hash,
            examples=exported.examples,
            new_examples=exported.new_examples,
            last_draft_id=exported.last_draft_id,
        )
        minimum = self.settings.retrain_min_examples
        if exported.new_examples < minimum:
            why = (
                f"{exported.new_examples} new examples since the last training, fewer than "
                f"retrain_min_examples={minimum}"
            )
            metrics = {runs.SKIPPED: why, "new_examples": exported.new_examples}
            await asyncio.to_thread(self._in_session, runs.succeed, run_id, metrics=metrics)
            log.info("nightly retraining of %r skipped: %s", account.name, why)
            return Outcome(account.name, run_id, "skipped", why)
        return exported

    async def _train(self, account: Account, run_id: int, exported: Exported) -> Outcome:
        if self._stopping or self._lost:
            return await self._end_aborted(account, run_id, self._abort_reason())
        job = ChildJob(
            account.name,
            run_id,
            exported.data,
            self.settings.retrain_threads,
            self.settings.retrain_nice,
        )
        log_path = exported.data / "train.log"
        log.info(
            "training %r (run %d) in a subprocess; its output: %s", account.name, run_id, log_path
        )
        try:
            returncode, stopped = await run_child(
                self.command(job),
                env=child_env(self.settings),
                log_path=log_path,
                kill=self._kill,
                grace_s=self.grace_s,
                started=self._started,
            )
        except OSError as exc:
            return await self._end_failed(
                account,
                run_id,
                f"could not start the training process ({exc}); check the "
                "Python environment the service runs in",
            )
        if stopped:
            return await self._end_aborted(account, run_id, self._abort_reason())
        run = await asyncio.to_thread(self._in_session, runs.get, run_id)
        if run.status == "running":  # the child died before it could say how it went
            return await self._end_failed(
                account,
                run_id,
                f"training process exited with code {returncode} without recording a result; "
                f"see {log_path}:\n{tail(log_path)}",
            )
        detail = run.error or _describe(run)
        log.info("nightly retraining of %r %s: %s", account.name, run.status, detail)
        return Outcome(account.name, run_id, run.status, detail)

    def _started(self, pid: int | None) -> None:
        self.child_pid = pid

    # --- the lease ------------------------------------------------------------------------

    async def _heartbeat(self, ttl: float) -> None:
        """Renew the lease every ttl/3. When it is gone, stop the child: another runner may
        be training already. A database blip is retried until the lease would have expired."""
        renewed = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                ok = await asyncio.to_thread(
                    self._in_session, leases.renew, LEASE, self.holder, ttl
                )
            except SQLAlchemyError as exc:
                if asyncio.get_running_loop().time() - renewed < ttl:
                    log.warning("could not renew the retraining lease (%s); retrying", exc)
                    continue
                ok = False
            if not ok:
                log.error(
                    "lost the retraining lease %r (another process took it after it expired); "
                    "stopping this run. If the machine stalls this long, raise retrain_lease_s",
                    LEASE,
                )
                self._lost = True
                self._kill.set()
                return
            renewed = asyncio.get_running_loop().time()

    def _release(self) -> None:
        try:
            self._in_session(leases.release, LEASE, self.holder)
        except SQLAlchemyError as exc:  # it expires on its own; say so rather than fail shutdown
            log.warning("could not release the retraining lease (%s); it expires by itself", exc)

    # --- helpers --------------------------------------------------------------------------

    def _abort_reason(self) -> str:
        if self._lost:
            return "lost the retraining lease to another process; that one trains instead"
        return "the service stopped during training (retrain_on_shutdown=terminate)"

    async def _end_failed(self, account: Account, run_id: int, error: str) -> Outcome:
        await asyncio.to_thread(self._in_session, runs.fail, run_id, error=error)
        log.error("nightly retraining of %r failed: %s", account.name, error)
        return Outcome(account.name, run_id, "failed", error)

    async def _end_aborted(self, account: Account, run_id: int, reason: str) -> Outcome:
        await asyncio.to_thread(self._in_session, runs.abort, run_id, reason)
        log.warning("nightly retraining of %r aborted: %s", account.name, reason)
        return Outcome(account.name, run_id, "aborted", reason)

    def _in_session(self, work: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run a store function in its own unit of work (called in a worker thread)."""
        with self.db.session() as s:
            return work(s, *args, **kwargs)


def _describe(run: runs.Run) -> str:
    """One line on what a finished child decided."""
    if "promoted" not in run.metrics:
        return ", ".join(f"{k}={v}" for k, v in run.metrics.items())
    verdict = "promoted" if run.metrics["promoted"] else "kept the active adapter over"
    return f"{verdict} {run.adapter or 'the candidate'}: {run.metrics.get('reason', '')}"
