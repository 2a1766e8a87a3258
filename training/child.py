"""The training subprocess, seen from its parent: what to start, with which limits, and how to
stop it without leaving anything behind.

The nightly runner (training/schedule.py) starts one child per account and awaits it without
blocking the event loop (`asyncio.create_subprocess_exec`). The child runs in its own process
group, so a stop reaches anything it started, but in the parent's session: with the kernel's
autogroup scheduling (on by default), niceness counts only within a session, so a niced child in
a session of its own would still take half the CPU from the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings

log = logging.getLogger(__name__)

TERMINATE_GRACE_S = 10.0
LOG_TAIL_CHARS = 1500


@dataclass(frozen=True, slots=True)
class ChildJob:
    """What one training subprocess is asked to do."""

    account: str
    run_id: int
    data: Path  # the export directory
    threads: int
    nice: int


ChildCommand = Callable[[ChildJob], Sequence[str]]


def nightly_command(job: ChildJob) -> list[str]:
    """The real child: train, evaluate, promote-if-better for one account (training/nightly.py)."""
    return [
        sys.executable,
        "-m",
        "training.nightly",
        "--account",
        job.account,
        "--run-id",
        str(job.run_id),
        "--data",
        str(job.data),
        "--threads",
        str(job.threads),
        "--nice",
        str(job.nice),
    ]


def child_env(settings: Settings) -> dict[str, str]:
    """The child's environment: ours, its thread budget, and the settings that may have been
    given in code rather than in the environment or config file (tests, `load_settings(**...)`),
    since the child reads the config itself."""
    threads = str(settings.retrain_threads)
    return {
        **os.environ,
        # Read by OpenMP and MKL when torch is imported: set before the child starts.
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
        "AUTOREPLY_DATABASE_URL": settings.database_url,
        "AUTOREPLY_ADAPTERS_DIR": str(settings.adapters_dir),
        "AUTOREPLY_EXPORTS_DIR": str(settings.exports_dir),
        "AUTOREPLY_MODEL": settings.model,
    }


async def run_child(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    log_path: Path,
    kill: asyncio.Event,
    grace_s: float = TERMINATE_GRACE_S,
    started: Callable[[int | None], None] = lambda pid: None,
) -> tuple[int, bool]:
    """Run `argv` with its output appended to `log_path` until it exits or `kill` is set.

    Returns (exit code, whether it was stopped by `kill`). `started` hears the child's pid,
    then None once it is gone. Cancelling the caller stops the child too: never an orphan.
    Raises OSError when it cannot be started.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            # A process group of its own (Ctrl-C at the terminal reaches only the parent, which
            # decides); not a session of its own (see the module docstring).
            process_group=0,
        )
    started(proc.pid)
    exited = asyncio.ensure_future(proc.wait())
    killed = asyncio.ensure_future(kill.wait())
    try:
        await asyncio.wait({exited, killed}, return_when=asyncio.FIRST_COMPLETED)
        stopped = not exited.done()
        if stopped:
            await terminate(proc, grace_s)
        return await exited, stopped
    finally:
        killed.cancel()
        if proc.returncode is None:  # cancelled while waiting
            await asyncio.shield(terminate(proc, grace_s))
        started(None)


async def terminate(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM to the child's process group; SIGKILL after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
            return
        except TimeoutError:
            log.warning("training process %d ignored %s", proc.pid, sig.name)
    await proc.wait()


def tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The end of a child's log, for the run's error."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - chars))
            return f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
