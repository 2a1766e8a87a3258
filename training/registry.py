"""Adapter versions on disk and in the database: where a trained adapter goes, its metadata,
promote and rollback.

Layout: `<adapters_dir>/<account>/<kind>/v<N>/` holds peft's `save_pretrained` output as it is
(peft and LoRAX load the directory unchanged) plus `autoreply.json`: base model, data hash,
training config, metrics, parent. The database row (bot/storage/adapters.py) says which version
is active; a running service polls it and swaps adapters without a restart.

Light on purpose: no torch, no TRL. The service and the CLI import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.domain import Actor, ActorKind, ActorRole, ModerationKind
from bot.errors import PermissionDeniedError
from bot.storage import accounts as account_store
from bot.storage import adapters as store
from bot.storage import drafts as draft_store
from bot.storage.adapters import KINDS, AdapterVersion, RegistryError
from bot.storage.db import Database

__all__ = [
    "KINDS",
    "METADATA_FILE",
    "AdapterVersion",
    "RegistryError",
    "Slot",
    "operator",
]

METADATA_FILE = "autoreply.json"


def operator(name: str = "operator") -> Actor:
    """The actor for CLI and nightly-job registry actions (operators may act on every account)."""
    return Actor(ActorKind.CLI, name, name, ActorRole.OPERATOR)


@dataclass(frozen=True)
class Slot:
    """Where the next version of (account, kind) is written, before it is registered."""

    account: str
    kind: str
    version: int
    path: Path

    @property
    def name(self) -> str:
        return store.version_name(self.account, self.kind, self.version)


def reserve(db: Database, adapters_dir: Path, account: str, kind: str) -> Slot:
    """The next free version directory of (account, kind); created empty.

    The version counts past directories left by crashed runs too, so a retry never writes
    into a half-written one.
    """
    with db.session() as s:
        version = store.next_version(s, account, kind)
    base = adapters_dir / account / kind
    while (base / f"v{version}").exists():
        version += 1
    path = base / f"v{version}"
    path.mkdir(parents=True)
    return Slot(account, kind, version, path)


def write_metadata(path: Path, metadata: dict[str, Any]) -> None:
    (path / METADATA_FILE).write_text(
        json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )


def read_metadata(path: Path) -> dict[str, Any]:
    file = path / METADATA_FILE
    if not file.exists():
        return {}
    data = json.loads(file.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def register(
    db: Database,
    slot: Slot,
    *,
    base_model: str,
    data_hash: str | None,
    config: dict[str, Any],
    metrics: dict[str, Any],
    parent: str | None = None,
) -> AdapterVersion:
    """Write the metadata next to the weights and record the version as a candidate."""
    write_metadata(
        slot.path,
        {
            "name": slot.name,
            "account": slot.account,
            "kind": slot.kind,
            "version": slot.version,
            "base_model": base_model,
            "data_hash": data_hash,
            "config": config,
            "metrics": metrics,
            "parent": parent,
        },
    )
    with db.session() as s:
        return store.register(
            s,
            account=slot.account,
            kind=slot.kind,
            version=slot.version,
            path=slot.path,
            base_model=base_model,
            data_hash=data_hash,
            config=config,
            metrics=metrics,
            parent=parent,
        )


def record_metrics(db: Database, name: str, metrics: dict[str, Any]) -> AdapterVersion:
    """Store evaluation results with the version, in the database and in its metadata file."""
    with db.session() as s:
        version = store.set_metrics(s, name, metrics)
    if version.path.is_dir():
        write_metadata(version.path, {**read_metadata(version.path), "metrics": version.metrics})
    return version


def get(db: Database, name: str) -> AdapterVersion:
    with db.session() as s:
        return store.get(s, name)


def versions(
    db: Database, account: str | None = None, kind: str | None = None
) -> list[AdapterVersion]:
    with db.session() as s:
        return store.versions(s, account, kind)


def active(db: Database, account: str, kind: str) -> AdapterVersion | None:
    with db.session() as s:
        return store.active(s, account, kind)


def reject(db: Database, name: str, reason: str) -> AdapterVersion:
    with db.session() as s:
        return store.reject(s, name, reason)


def gate_refusal(version: AdapterVersion) -> str | None:
    """Why the stored eval gate kept the active adapter over `version` (`adapters eval` keeps
    its verdict in metrics["eval"]); None when it passed or never ran. The CLI and the
    dashboard refuse a promotion on this unless forced."""
    gate = version.metrics.get("eval")
    if isinstance(gate, dict) and not gate.get("promote"):
        return str(gate.get("reason") or "no reason stored")
    return None


def _allowed(actor: Actor, account: str | None) -> None:
    if actor.role is not ActorRole.OPERATOR or (account and not actor.may_act_on(account)):
        raise PermissionDeniedError(
            f"{actor.display} may not change {account}'s adapters: promote and rollback are "
            "for operators of that account"
        )


def promote(db: Database, name: str, actor: Actor, note: str | None = None) -> AdapterVersion:
    """Activate `name` for its account and kind (the previous one is retired); audited."""
    with db.session() as s:
        target = store.get(s, name)
        _allowed(actor, target.account)
        if not target.path.is_dir():
            raise RegistryError(
                f"{name}'s directory {target.path} is missing; restore it or train again"
            )
        promoted, previous = store.promote(s, name)
        state = account_store.by_name(s, promoted.account or "")
        assert state is not None  # promote refuses adapters without an account
        draft_store.audit(
            s,
            account_id=state.id,
            actor=actor,
            action=ModerationKind.PROMOTE,
            target_kind="adapter",
            target=name,
            before_text=previous.name if previous else None,
            after_text=name,
            note=note,
        )
        return promoted


def rollback(
    db: Database, account: str, kind: str, actor: Actor, note: str | None = None
) -> AdapterVersion | None:
    """Retire the active (account, kind) adapter and restore the one before it; audited.

    Returns the restored version, or None when the account goes back to no adapter.
    """
    _allowed(actor, account)
    with db.session() as s:
        retired, restored = store.rollback(s, account, kind)
        state = account_store.by_name(s, account)
        assert state is not None  # store.rollback checked the account
        draft_store.audit(
            s,
            account_id=state.id,
            actor=actor,
            action=ModerationKind.ROLLBACK,
            target_kind="adapter",
            target=retired.name,
            before_text=retired.name,
            after_text=restored.name if restored else None,
            note=note,
        )
        return restored
