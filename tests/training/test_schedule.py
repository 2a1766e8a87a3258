"""The nightly runner with fake children (tiny `python -c` scripts), on SQLite: outcomes are
recorded, a failing child leaves the active adapter alone, shutdown terminates (or awaits) the
child, frees the lease and leaves no process behind, a stalled runner that lost its lease stops.
The eval-gate child itself (training/nightly.py) is tested with its trainer and gate replaced.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.accounts import Account, load_accounts
from bot.config import Settings
from bot.domain import Mode, utcnow
from bot.errors import ConfigError
from bot.jobs import RETRAIN_MISFIRE_GRACE_S, add_nightly_retrain, crontab_trigger
from bot.local_delivery import console_wake
from bot.moderation import ModerationService
from bot.service import Service
from bot.storage import accounts as account_store
from bot.storage import leases
from bot.storage import training_runs as runs
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema
from tests.fakes import OPERATOR, AllowAll, CannedDrafter, RecordingChannel, account, queue_draft
from training import nightly, registry
from training.schedule import LEASE, ChildJob, Exported, NightlyRunner, Outcome, export_with

SHOP = account("shop")

# The child writes its own outcome, as training/nightly.py does, through the same store.
SUCCEED = """
import os, sys, time
from bot.storage.db import Database
from bot.storage import training_runs as runs
time.sleep(float(sys.argv[2]))
db = Database(os.environ["AUTOREPLY_DATABASE_URL"])
with db.session() as s:
    runs.succeed(s, int(sys.argv[1]), metrics={"promoted": True, "reason": "fake",
                 "omp": os.environ["OMP_NUM_THREADS"]})
db.dispose()
"""
CRASH = "import sys; print('boom: out of memory', file=sys.stderr); sys.exit(3)"
SLEEP = "import time; time.sleep(120)"
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"


def script(code: str, *extra: str) -> Callable[[ChildJob], list[str]]:
    return lambda job: [sys.executable, "-c", code, str(job.run_id), *extra]


def no_child(job: ChildJob) -> list[str]:
    raise AssertionError(f"no training should start (run {job.run_id})")


class FakeExport:
    """Implements the runner's Exporter: `new` new examples each night; remembers `after`."""

    def __init__(self, new: int = 5, fail: bool = False) -> None:
        self.new = new
        self.fail = fail
        self.after: list[int | None] = []

    def __call__(self, account: Account, out_dir: Path, after: int | None) -> Exported:
        self.after.append(after)
        if self.fail:
            raise OSError("disk full")
        out_dir.mkdir(parents=True, exist_ok=True)
        last = (after or 0) + self.new
        return Exported(out_dir, last, self.new, last, "hash")


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Database]:
    ensure_schema(sqlite_url)
    database = Database(sqlite_url)
    with database.session() as s:
        account_store.bind(s, "shop", "console", "shop")
    yield database
    database.dispose()


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db.url,
        exports_dir=tmp_path / "exports",
        adapters_dir=tmp_path / "adapters",
        retrain_min_examples=3,
        retrain_threads=1,
    )


def runner(
    db: Database,
    settings: Settings,
    command: Callable[[ChildJob], list[str]],
    export: FakeExport | None = None,
    **kw: Any,
) -> NightlyRunner:
    return NightlyRunner(
        db, settings, [SHOP], command=command, exporter=export or FakeExport(), **kw
    )


def _run(db: Database, run_id: int | None) -> runs.Run:
    assert run_id is not None
    with db.session() as s:
        return runs.get(s, run_id)


def _lease_holder(db: Database) -> str | None:
    with db.session() as s:
        return leases.holder(s, LEASE)


def _gone(pid: int) -> bool:
    """No process left in the child's process group (the child and anything it started)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def _child_started(r: NightlyRunner) -> int:
    for _ in range(400):
        if r.child_pid is not None:
            return r.child_pid
        await asyncio.sleep(0.025)
    raise AssertionError("the training child never started")


# --- outcomes ---------------------------------------------------------------------------------


def test_a_successful_child_records_succeeded_and_frees_the_lease(
    db: Database, settings: Settings
) -> None:
    export = FakeExport(new=5)
    r = runner(db, settings, script(SUCCEED, "0"), export)
    (outcome,) = asyncio.run(r.run()) or []
    assert outcome.status == "succeeded", outcome
    run = _run(db, outcome.run_id)
    assert run.status == "succeeded" and run.account == "shop"
    assert run.metrics["omp"] == "1"  # the child ran on retrain_threads
    assert run.params["new_examples"] == 5 and run.params["last_draft_id"] == 5
    assert run.params["holder"] == r.holder
    assert _lease_holder(db) is None and r.child_pid is None

    # The next night counts new examples from where this training's data ended.
    asyncio.run(r.run())
    assert export.after == [None, 5]


def test_too_few_new_examples_skip_the_night_and_say_why(db: Database, settings: Settings) -> None:
    r = runner(db, settings, no_child, FakeExport(new=2))
    (outcome,) = asyncio.run(r.run()) or []
    assert outcome.status == "skipped" and "retrain_min_examples=3" in outcome.detail
    run = _run(db, outcome.run_id)
    assert run.status == "succeeded" and run.skipped
    with db.session() as s:
        assert runs.last_trained(s, "shop", "reply") is None  # a skip is not a training


def test_a_failed_child_records_failed_and_leaves_the_active_adapter(
    db: Database, settings: Settings
) -> None:
    slot = registry.reserve(db, settings.adapters_dir, "shop", "reply")
    registry.register(db, slot, base_model="tiny", data_hash="h", config={}, metrics={})
    registry.promote(db, slot.name, registry.operator())

    (outcome,) = asyncio.run(runner(db, settings, script(CRASH)).run()) or []
    assert outcome.status == "failed"
    run = _run(db, outcome.run_id)
    assert run.status == "failed"
    assert "exited with code 3" in (run.error or "") and "boom: out of memory" in (run.error or "")
    active = registry.active(db, "shop", "reply")
    assert active is not None and active.name == slot.name
    assert _lease_holder(db) is None


def test_a_failed_export_is_recorded(db: Database, settings: Settings) -> None:
    (outcome,) = asyncio.run(runner(db, settings, no_child, FakeExport(fail=True)).run()) or []
    assert outcome.status == "failed" and "disk full" in outcome.detail
    assert _run(db, outcome.run_id).status == "failed"


def test_a_runner_without_the_lease_does_nothing(db: Database, settings: Settings) -> None:
    with db.session() as s:
        assert leases.acquire(s, LEASE, "other-process", 60.0)
    assert asyncio.run(runner(db, settings, no_child).run()) is None
    with db.session() as s:
        assert runs.recent(s) == []
    assert _lease_holder(db) == "other-process"


def test_accounts_that_do_not_draft_are_not_trained(db: Database, settings: Settings) -> None:
    quiet = account("quiet", mode=Mode.OFF)
    r = NightlyRunner(db, settings, [quiet], command=no_child, exporter=FakeExport())
    assert asyncio.run(r.run()) == []


def test_the_real_export_step_counts_replies_past_the_last_training(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    mod = ModerationService(db, gate=AllowAll, wake=console_wake(db))
    drafts = []
    for i, (text, reply) in enumerate(
        [
            ("where is my order?", "Let me check that for you."),
            ("do you ship to Canada?", "Yes, we do."),
        ]
    ):
        _, draft = queue_draft(db, text, reply, chat_id=f"c{i}", user_id=f"u{i}")
        mod.approve(OPERATOR, draft)
        drafts.append(draft)
    export = export_with(db, settings)

    everything = export(SHOP, tmp_path / "first", None)
    assert (everything.examples, everything.new_examples) == (2, 2)
    assert everything.last_draft_id == drafts[1] and everything.data_hash
    assert (everything.data / "sft.jsonl").is_file()
    since_first = export(SHOP, tmp_path / "second", drafts[0])
    assert (since_first.examples, since_first.new_examples) == (2, 1)


# --- stopping the child ----------------------------------------------------------------------


def test_losing_the_lease_stops_the_child_and_aborts_the_run(
    db: Database, settings: Settings
) -> None:
    fast = settings.model_copy(update={"retrain_lease_s": 0.6})  # renewals every 0.2 s
    r = runner(db, fast, script(SLEEP), grace_s=2.0)

    async def scenario() -> tuple[list[Outcome] | None, int]:
        task = asyncio.create_task(r.run())
        pid = await _child_started(r)
        # Another process takes the lease, as if ours had expired while we stalled.
        with db.session() as s:
            later = utcnow() + timedelta(seconds=5)
            assert leases.acquire(s, LEASE, "thief", 60.0, now=later)
        return await asyncio.wait_for(task, 10), pid

    outcomes, pid = asyncio.run(scenario())
    (outcome,) = outcomes or []
    assert outcome.status == "aborted" and "lost the retraining lease" in outcome.detail
    assert _run(db, outcome.run_id).status == "aborted"
    assert _gone(pid)
    assert _lease_holder(db) == "thief"  # our release does not free someone else's lease


def test_a_child_ignoring_sigterm_is_killed(db: Database, settings: Settings) -> None:
    r = runner(db, settings, script(STUBBORN), grace_s=0.3)

    async def scenario() -> tuple[list[Outcome] | None, int]:
        task = asyncio.create_task(r.run())
        pid = await _child_started(r)
        # Its own process group (stopped as a whole), in our session (so nice counts).
        assert os.getpgid(pid) == pid and os.getsid(pid) == os.getsid(0)
        await asyncio.sleep(0.3)  # let it install its handler
        await asyncio.wait_for(r.stop("terminate"), 10)
        assert task.done()
        return task.result(), pid

    outcomes, pid = asyncio.run(scenario())
    (outcome,) = outcomes or []
    assert outcome.status == "aborted" and "service stopped" in outcome.detail
    assert _gone(pid) and _lease_holder(db) is None


def test_a_cancelled_run_leaves_no_child_and_no_running_run(
    db: Database, settings: Settings
) -> None:
    r = runner(db, settings, script(SLEEP), grace_s=2.0)

    async def scenario() -> int:
        task = asyncio.create_task(r.run())
        pid = await _child_started(r)
        task.cancel()  # Ctrl-C during `autoreply train nightly`
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid

    pid = asyncio.run(scenario())
    assert _gone(pid) and _lease_holder(db) is None
    with db.session() as s:
        (run,) = runs.recent(s)
    assert run.status == "aborted"


def test_recover_aborts_runs_a_dead_process_left_running(db: Database, settings: Settings) -> None:
    with db.session() as s:
        run_id = runs.start(
            s, account="shop", kind="reply", params={"lease": LEASE, "holder": "dead"}
        )
    assert asyncio.run(runner(db, settings, no_child).recover()) == [run_id]
    assert _run(db, run_id).status == "aborted"


# --- the service's shutdown path -------------------------------------------------------------


def _service_scenario(
    settings: Settings, db: Database, command: Callable[[ChildJob], list[str]]
) -> tuple[list[Outcome] | None, int]:
    """Run the real service, start a nightly run by hand, stop the service while it trains."""

    def factory(d: Database, s: Settings, accounts: Any) -> NightlyRunner:
        return NightlyRunner(d, s, accounts, command=command, exporter=FakeExport(), grace_s=2)

    service = Service(
        settings,
        [SHOP],
        [RecordingChannel(account="shop")],
        drafter=CannedDrafter(),
        retrainer=factory,
    )

    async def scenario() -> tuple[list[Outcome] | None, int]:
        stop = asyncio.Event()
        serving = asyncio.create_task(service.run(stop))
        for _ in range(400):
            if service.running is not None and service.running.retrainer is not None:
                break
            await asyncio.sleep(0.025)
        retrainer = service.running.retrainer if service.running else None
        assert retrainer is not None
        nightly_run = asyncio.create_task(retrainer.run())
        pid = await _child_started(retrainer)
        stop.set()
        await asyncio.wait_for(serving, 30)
        assert nightly_run.done(), "the service returned before its nightly run ended"
        return nightly_run.result(), pid

    return asyncio.run(scenario())


def test_service_shutdown_terminates_the_training_and_marks_it_aborted(
    db: Database, settings: Settings
) -> None:
    enabled = settings.model_copy(update={"retrain_enabled": True})
    outcomes, pid = _service_scenario(enabled, db, script(SLEEP))
    (outcome,) = outcomes or []
    assert outcome.status == "aborted"
    assert _run(db, outcome.run_id).status == "aborted"
    assert _gone(pid) and _lease_holder(db) is None


def test_service_shutdown_waits_for_the_training_in_finish_mode(
    db: Database, settings: Settings
) -> None:
    finish = settings.model_copy(update={"retrain_enabled": True, "retrain_on_shutdown": "finish"})
    outcomes, pid = _service_scenario(finish, db, script(SUCCEED, "1.0"))
    (outcome,) = outcomes or []
    assert outcome.status == "succeeded"
    assert _run(db, outcome.run_id).status == "succeeded"
    assert _gone(pid) and _lease_holder(db) is None


# --- the schedule ----------------------------------------------------------------------------


def test_the_cron_job_runs_once_at_a_time_and_tolerates_a_late_start() -> None:
    async def scenario() -> None:
        scheduler = AsyncIOScheduler()
        scheduler.start()
        calls: list[int] = []

        async def job() -> None:
            calls.append(1)

        add_nightly_retrain(scheduler, job, "30 3 * * *")
        registered = scheduler.get_job("nightly_retrain")
        assert registered is not None
        assert registered.coalesce is True and registered.max_instances == 1
        assert registered.misfire_grace_time == RETRAIN_MISFIRE_GRACE_S
        assert isinstance(registered.trigger, CronTrigger)
        fire = registered.next_run_time
        assert (fire.hour, fire.minute) == (3, 30)
        scheduler.shutdown(wait=False)

    asyncio.run(scenario())


def test_crontab_weekdays_count_from_sunday_like_cron() -> None:
    wednesday = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def next_day(expr: str) -> str:
        trigger = crontab_trigger(expr)
        fire = trigger.get_next_fire_time(None, wednesday.astimezone(trigger.timezone))
        assert fire is not None
        return str(fire.strftime("%a"))

    assert next_day("0 3 * * 0") == "Sun"
    assert next_day("0 3 * * 7") == "Sun"
    assert next_day("0 3 * * 1-2") == "Mon"
    assert next_day("0 3 * * 4,6") == "Thu"
    assert next_day("0 3 * * sat") == "Sat"
    with pytest.raises(ConfigError, match="five fields"):
        crontab_trigger("30 3 * *")
    with pytest.raises(ConfigError, match="outside 0-7"):
        crontab_trigger("30 3 * * 9")


def test_a_bad_cron_line_stops_the_service_before_it_starts(settings: Settings) -> None:
    bad = settings.model_copy(update={"retrain_enabled": True, "retrain_cron": "nightly"})
    with pytest.raises(ConfigError, match="AUTOREPLY_RETRAIN_CRON"):
        Service(bad, [SHOP], [RecordingChannel(account="shop")], drafter=CannedDrafter())


# --- the child: training/nightly.py ----------------------------------------------------------


@pytest.fixture
def fake_gate(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the trainer and the eval gate inside training.nightly."""
    calls: dict[str, Any] = {"evaluated": []}

    def train(db: Database, settings: Settings, account: str, data: Path) -> str:
        if calls.get("train_error"):
            raise RuntimeError(calls["train_error"])
        slot = registry.reserve(db, settings.adapters_dir, account, "reply")
        registry.register(db, slot, base_model="tiny", data_hash="h", config={}, metrics={})
        return slot.name

    def evaluate(
        db: Database, settings: Settings, account: str, candidate: str, data: Path
    ) -> dict[str, Any]:
        calls["evaluated"].append(candidate)
        if calls.get("eval_error"):
            raise ValueError(calls["eval_error"])
        return {"promoted": False, "reason": "not better", "metrics": {}}

    monkeypatch.setattr(nightly, "train", train)
    monkeypatch.setattr(nightly, "evaluate", evaluate)
    return calls


def _started(db: Database) -> int:
    with db.session() as s:
        return runs.start(s, account="shop", kind="reply", params={})


def test_nightly_child_records_the_gates_decision(
    db: Database, settings: Settings, fake_gate: dict[str, Any], tmp_path: Path
) -> None:
    run_id = _started(db)
    assert nightly.run(db, settings, "shop", run_id, tmp_path) == 0
    run = _run(db, run_id)
    assert run.status == "succeeded" and run.adapter == "shop-reply-v1"
    assert run.metrics == {"promoted": False, "reason": "not better", "metrics": {}}


def test_nightly_child_failing_in_evaluation_promotes_nothing(
    db: Database, settings: Settings, fake_gate: dict[str, Any], tmp_path: Path
) -> None:
    fake_gate["eval_error"] = "probe set missing"
    run_id = _started(db)
    assert nightly.run(db, settings, "shop", run_id, tmp_path) == 1
    run = _run(db, run_id)
    assert run.status == "failed" and "probe set missing" in (run.error or "")
    assert run.adapter == "shop-reply-v1"  # the candidate stays listed, never promoted
    assert registry.active(db, "shop", "reply") is None


def test_nightly_child_does_not_evaluate_a_run_aborted_meanwhile(
    db: Database, settings: Settings, fake_gate: dict[str, Any], tmp_path: Path
) -> None:
    run_id = _started(db)
    with db.session() as s:
        runs.abort(s, run_id, "service stopped")
    assert nightly.run(db, settings, "shop", run_id, tmp_path) == 1
    assert fake_gate["evaluated"] == []
    assert _run(db, run_id).status == "aborted"


def test_nightly_child_runs_niced_on_its_thread_budget() -> None:
    code = (
        "import os; from training.nightly import limit_resources; limit_resources(1, 10); "
        "import torch; print(os.getpriority(os.PRIO_PROCESS, 0), torch.get_num_threads())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    nice, threads = done.stdout.split()
    assert int(nice) >= 10 and threads == "1"


# --- end to end: the real child on the tiny model --------------------------------------------

REPLIES = [
    ("where is my order {i}?", "Your order {i} ships today, sorry for the wait."),
    ("can I return item {i}?", "Yes, item {i} can be returned within thirty days."),
    ("do you ship to city {i}?", "We ship to city {i} in three to five days."),
    ("my package {i} arrived damaged", "Sorry about package {i}, we will replace it at once."),
]


@pytest.mark.slow
def test_the_real_nightly_child_trains_evaluates_and_records(
    db: Database, tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=db.url,
        model=str(tiny_model_dir),
        exports_dir=tmp_path / "exports",
        adapters_dir=tmp_path / "adapters",
        retrain_min_examples=10,
    )
    default = load_accounts(settings).default
    mod = ModerationService(db, gate=AllowAll, wake=console_wake(db))
    for i in range(12):
        for j, (text, reply) in enumerate(REPLIES):
            _, draft = queue_draft(
                db,
                text.format(i=i),
                reply.format(i=i),
                account=default.name,
                chat_id=f"c{i}-{j}",
                user_id=f"u{i}-{j}",
            )
            mod.approve(OPERATOR, draft)
    r = NightlyRunner(db, settings, [default])

    (outcome,) = asyncio.run(r.run()) or []

    run = _run(db, outcome.run_id)
    log_tail = (Path(run.params["data"]) / "train.log").read_text(encoding="utf-8")[-3000:]
    assert outcome.status == "succeeded", f"{outcome.detail}\n{log_tail}"
    assert run.adapter == f"{default.name}-reply-v1"
    candidate = registry.get(db, run.adapter)
    assert candidate.status == ("active" if run.metrics["promoted"] else "rejected")
    assert run.metrics["reason"] and "eval" in candidate.metrics
    assert _lease_holder(db) is None
