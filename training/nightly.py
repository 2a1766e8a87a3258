"""`python -m training.nightly`: one account's nightly training, in a process of its own.

Started by the nightly runner (training/schedule.py), which has exported the data, recorded the
run and holds the lease. Here: lower our priority and thread count (before torch is imported),
train a reply adapter from the export (registered as a candidate), let the eval gate compare
it with the active adapter on the export's held-out replies (it promotes only a better one, as
its very last step, and rejects a worse one), and write the run's outcome. Any error ends the
run as failed with the error; the active adapter is then untouched.

If the parent process dies (killed without a chance to stop us), we exit too: nobody would
be watching the run or holding the lease any more.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.storage.db import Database

log = logging.getLogger("training.nightly")

PARENT_CHECK_S = 2.0
ORPHANED_EXIT = 70


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.nightly",
        description="Train, evaluate and promote-if-better one account's reply adapter "
        "(started by the nightly runner; see training/schedule.py).",
    )
    parser.add_argument("--account", required=True, help="Account name, as in the config.")
    parser.add_argument("--run-id", type=int, required=True, help="Its training_runs row.")
    parser.add_argument("--data", type=Path, required=True, help="The export folder.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--nice", type=int, default=10, help="Niceness to run at (0-19).")
    return parser.parse_args(argv)


def limit_resources(threads: int, nice: int) -> None:
    """Run at niceness `nice` (never lower than now: an unprivileged process cannot) on
    `threads` threads. Before torch is imported, so every thread it starts inherits both."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (torch imported and used earlier): keep what it has
        log.debug("torch inter-op threads were already fixed")


def exit_with_parent(interval_s: float = PARENT_CHECK_S) -> None:
    """Exit when the parent (the service or the CLI runner) goes away: a reparented child
    would train and promote with nobody holding the lease or watching the run."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                log.error("the process that started this training is gone; stopping")
                os._exit(ORPHANED_EXIT)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    limit_resources(args.threads, args.nice)
    exit_with_parent()

    from bot.accounts import load_accounts
    from bot.config import load_settings
    from bot.storage.db import Database

    settings = load_settings()
    db = Database(settings.database_url)
    try:
        account = load_accounts(settings).get(args.account)
        return run(db, settings, account.name, args.run_id, args.data)
    finally:
        db.dispose()


def run(db: Database, settings: Settings, account: str, run_id: int, data: Path) -> int:
    """Train, evaluate, record. Returns the exit code (0: the run succeeded, whatever the
    gate decided)."""
    from bot.storage import training_runs as runs

    candidate: str | None = None
    try:
        candidate = train(db, settings, account, data)
        with db.session() as s:
            if runs.get(s, run_id).status != "running":
                log.warning("run %d was ended meanwhile; not evaluating %s", run_id, candidate)
                return 1
        decision = evaluate(db, settings, account, candidate, data)
    except Exception as exc:  # recorded on the run, then the exit code says so
        log.exception("training %s failed", account)
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"
        with db.session() as s:
            runs.fail(s, run_id, error=error, adapter=candidate)
        return 1
    with db.session() as s:
        runs.succeed(s, run_id, metrics=decision, adapter=candidate)
    log.info("run %d done: %s", run_id, decision.get("reason"))
    return 0


def train(db: Database, settings: Settings, account: str, data: Path) -> str:
    """Train a reply adapter on the export and register it; returns the candidate's name."""
    from training.train_reply import train_from_export

    return str(train_from_export(db, settings, account, data).name)


def evaluate(
    db: Database, settings: Settings, account: str, candidate: str, data: Path
) -> dict[str, Any]:
    """The eval gate on the export's held-out replies: it promotes a better candidate (audited
    as the operator "nightly") and rejects a worse one. Returns its decision as run metrics."""
    from bot.accounts import load_accounts
    from training import registry
    from training.evaluate import evaluate as gate

    verdict = gate(
        db,
        settings,
        load_accounts(settings),
        candidate,
        data=data / "sft.jsonl",
        promote=True,
        actor=registry.operator("nightly"),
    )
    return {
        "promoted": verdict.promote,
        "reason": verdict.reason,
        "baseline": verdict.baseline,
        "candidate_metrics": verdict.candidate_metrics,
        "baseline_metrics": verdict.baseline_metrics,
    }


if __name__ == "__main__":
    sys.exit(main())
