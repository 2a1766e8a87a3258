"""Moderated history as training data (`autoreply export`, and the nightly job).

Each account gets a folder with:
- `sft.jsonl`: replies that went out (approved, edited or auto-sent), with their context;
- `preferences.jsonl`: the reply that went out against a worse one (the model's draft an edit
  replaced, a rejected draft for the same message, a candidate best-of-n dropped);
- `labels-intent.jsonl`, `labels-sentiment.jsonl`, `labels-safety.jsonl` (non-empty ones only):
  moderators' corrections and imported labels, the account's and the shared ones;
- `manifest.json`: rows and sha256 per file, `data_hash` over all of them, what each rule
  removed, where the data came from and which code wrote it.
Row formats and the rules are in training/examples.py. Rows go out in id order and JSON is
written the same way every time, so the same data always gives the same `data_hash`.

The folder is written under a temporary name and renamed when complete, so a reader never
sees half an export.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import make_url

from bot.domain import DraftStatus, Turn, Verdict, utcnow
from bot.errors import InputError, NotFoundError
from bot.labels import TASKS
from bot.safety.context import NO_CONTEXT, CheckContext
from bot.storage import accounts as account_store
from bot.storage import drafts as draft_store
from bot.storage import history, training_data
from bot.storage.db import Database
from bot.storage.training_data import ReplyRecord
from training.examples import (
    Row,
    Tally,
    examples,
    gate_today,
    label_rows,
    preference_rows,
    screen,
    sft_rows,
)

if TYPE_CHECKING:
    from bot.accounts import Account
    from bot.config import Settings

CONTEXT_BATCH = 200  # contexts read per unit of work, so SQLite's write lock is held briefly
MANIFEST = "manifest.json"


class ExportGate(Protocol):
    """The safety gate's two judgements the export re-runs (`SafetyGate` has both), under the
    account's rules (its thresholds, blocklist, allowed links, persona)."""

    def check_inputs(self, texts: Sequence[str], context: CheckContext) -> list[Verdict]: ...

    def check_drafts(self, texts: Sequence[str], context: CheckContext) -> list[Verdict]: ...


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What one account's export wrote. `files` and `counts` are keyed by file name (data
    files only; the manifest is `manifest`)."""

    account: str
    out_dir: Path
    files: dict[str, Path]
    counts: dict[str, int]
    data_hash: str
    manifest: Path

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def export_account(
    db: Database,
    settings: Settings,
    account: str,
    out_dir: Path | str,
    since: datetime | None = None,
    *,
    gate: ExportGate | None = None,
    intent_labels: Sequence[str] | None = None,
    max_per_user: int | None = None,
) -> ExportResult:
    """Export one account (by name) into `out_dir`, which must not exist or be empty.

    `since` keeps drafts and labels created at or after it. `gate` defaults to the safety gate
    the service builds from `settings`; `intent_labels` to the account's configured labels;
    `max_per_user` to `settings.export_max_per_user`."""
    out = Path(out_dir)
    _check_free(out)
    cap = max_per_user if max_per_user is not None else settings.export_max_per_user
    tally = Tally()
    with db.session() as s:
        state = account_store.by_name(s, account)
        if state is None:
            raise NotFoundError(
                f"there is no account {account!r} in the database; see `autoreply accounts "
                "list` (an account appears once it has received a message)"
            )
        records = training_data.replies(s, state.id, since)
        label_records = training_data.labels(s, state.id, since)
        dropped = draft_store.dropped_candidates(s, account_id=state.id)
    kept = screen(records, tally)
    contexts = _contexts(db, kept, settings.history_turns)
    judge = gate if gate is not None else _service_gate(settings)
    configured = configured_account(settings, account)
    # The account's own rules as the pipeline applies them today (one context for the whole
    # export: the rules and persona; the insult-echo check, which needs each user's message,
    # is the one draft check this leaves out).
    rules = configured.check_context() if configured is not None else NO_CONTEXT
    items = gate_today(
        examples(kept, contexts, tally),
        lambda texts: judge.check_inputs(texts, rules),
        lambda texts: judge.check_drafts(texts, rules),
        tally,
    )
    kept_ids = {item.record.draft_id for item in items}
    rejected = [
        r
        for r in records
        if r.status is DraftStatus.REJECTED
        and not r.fallback_used
        and not (r.user_erased or r.user_banned)
    ]
    data: dict[str, list[Row]] = {
        "sft.jsonl": sft_rows(account, items, cap, tally),
        "preferences.jsonl": preference_rows(
            account, items, rejected, [d for d in dropped if d.draft_id in kept_ids], cap, tally
        ),
    }
    intents = intent_labels if intent_labels is not None else account_intents(settings, account)
    by_task = label_rows(label_records, intents, tally)
    data.update({f"labels-{task}.jsonl": by_task[task] for task in TASKS if by_task.get(task)})

    partial = _partial_dir(out)
    hashes = {name: _write_jsonl(partial / name, rows) for name, rows in data.items()}
    data_hash = _data_hash(hashes)
    counts = {name: len(rows) for name, rows in data.items()}
    manifest = {
        "account": account,
        "since": since.isoformat() if since else None,
        "created_at": utcnow().isoformat(timespec="seconds"),
        "database": make_url(db.url).render_as_string(hide_password=True),
        "code_version": code_version(),
        "history_turns": settings.history_turns,
        "max_per_user": cap,
        "counts": counts,
        "sha256": hashes,
        "data_hash": data_hash,
        "read": {"drafts": len(records), "labels": len(label_records)},
        "scrubbed_texts": tally.scrubbed,
        "rules": tally.report(),
    }
    _write_json(partial / MANIFEST, manifest)
    _publish(partial, out)
    return ExportResult(
        account=account,
        out_dir=out,
        files={name: out / name for name in data},
        counts=counts,
        data_hash=data_hash,
        manifest=out / MANIFEST,
    )


def export_accounts(
    db: Database,
    settings: Settings,
    out_dir: Path | str,
    *,
    accounts: Sequence[str] | None = None,
    since: datetime | None = None,
) -> list[ExportResult]:
    """Export each named account (default: every account in the database) into its own
    subfolder of `out_dir`; one safety gate serves them all."""
    if accounts is None:
        with db.session() as s:
            accounts = training_data.account_names(s)
    gate = _service_gate(settings)
    return [
        export_account(db, settings, name, Path(out_dir) / name, since, gate=gate)
        for name in accounts
    ]


def default_out_dir(settings: Settings, now: datetime | None = None) -> Path:
    """`<exports_dir>/<UTC timestamp>/`, e.g. exports/20261202T171350Z."""
    return Path(settings.exports_dir) / (now or utcnow()).strftime("%Y%m%dT%H%M%SZ")


def parse_since(text: str) -> datetime:
    """`2026-11-01` or an ISO date-time; without a time zone, UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"--since {text!r} is not a date; write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def configured_account(settings: Settings, account: str) -> Account | None:
    """The configured account named `account` (or whose console it is); None when it is no
    longer configured."""
    from bot.accounts import load_accounts

    for configured in load_accounts(settings).all:
        if account in (configured.name, configured.console().name):
            return configured
    return None


def account_intents(settings: Settings, account: str) -> tuple[str, ...]:
    """The configured intent labels of `account`; the flat settings' labels for an account no
    longer configured."""
    configured = configured_account(settings, account)
    return configured.intent_labels if configured is not None else settings.intent_labels


def code_version() -> str:
    """`git describe` of the checkout this code runs from, else the installed version."""
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            done = subprocess.run(
                ["git", "describe", "--always", "--dirty", "--tags"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass  # no git binary, or not a repository after all: the package version will do
    try:
        return importlib.metadata.version("autoreply")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --- internals ------------------------------------------------------------------------------


def _service_gate(settings: Settings) -> ExportGate:
    from bot.safety.gate import SafetyGate

    return SafetyGate.from_settings(settings)  # as bot.service.build_gate builds it


def _contexts(db: Database, records: Sequence[ReplyRecord], turns: int) -> dict[int, list[Turn]]:
    """Draft id -> the turns before its message, as the pipeline reads them for a prompt."""
    found: dict[int, list[Turn]] = {}
    for start in range(0, len(records), CONTEXT_BATCH):
        with db.session() as s:
            for r in records[start : start + CONTEXT_BATCH]:
                found[r.draft_id] = history.recent_turns(s, r.conversation_id, r.message_id, turns)
    return found


def _check_free(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(
            f"{out} already exists and is not empty; choose a new --out folder (an export "
            "never writes over another)"
        )


def _partial_dir(out: Path) -> Path:
    _check_free(out)  # again: another export may have taken it meanwhile
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # left by an export that died half-way
    partial.mkdir(parents=True)
    return partial


def _publish(partial: Path, out: Path) -> None:
    if out.exists():
        out.rmdir()  # empty, checked in _partial_dir
    partial.rename(out)


def _write_jsonl(path: Path, rows: Sequence[Row]) -> str:
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _data_hash(hashes: dict[str, str]) -> str:
    """One hash for the whole export: every file's name and sha256, in name order."""
    lines = "".join(f"{name} {digest}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()
