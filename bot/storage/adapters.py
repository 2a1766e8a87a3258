"""The adapter registry's rows: versions per (account, kind), and which one is active.

At most one version per (account, kind) is active. `promote` retires the active one and
activates another; `rollback` retires the active one and re-activates the most recently retired
one. Both run in the caller's transaction, and a running service notices the change by polling
`active_names` (cheap: one indexed query).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.domain import as_utc, utcnow
from bot.errors import AutoreplyError
from bot.storage import models as m

KINDS = ("reply", "intent", "sentiment", "safety")
Status = m.AdapterStatus


class RegistryError(AutoreplyError):
    """A registry operation that cannot be done; the message says what to do instead."""


@dataclass(frozen=True)
class AdapterVersion:
    id: int
    name: str
    account: str | None
    kind: str
    version: int
    path: Path
    base_model: str
    status: str
    metrics: dict[str, Any]
    data_hash: str | None
    config: dict[str, Any]
    parent: str | None
    created_at: datetime | None
    promoted_at: datetime | None


def _version(session: Session, row: m.Adapter) -> AdapterVersion:
    account = session.get(m.Account, row.account_id) if row.account_id is not None else None
    parent = session.get(m.Adapter, row.parent_id) if row.parent_id is not None else None
    return AdapterVersion(
        id=row.id,
        name=row.name,
        account=account.name if account is not None else None,
        kind=row.kind,
        version=row.version,
        path=Path(row.path),
        base_model=row.base_model,
        status=str(row.status),
        metrics=dict(row.metrics or {}),
        data_hash=row.data_hash,
        config=dict(row.config or {}),
        parent=parent.name if parent is not None else None,
        created_at=as_utc(row.created_at) if row.created_at else None,
        promoted_at=as_utc(row.promoted_at) if row.promoted_at else None,
    )


def _account_id(session: Session, account: str) -> int:
    found = session.scalars(select(m.Account.id).where(m.Account.name == account)).first()
    if found is None:
        raise RegistryError(
            f"no account named {account!r} in the database; check the name with "
            "`autoreply accounts list` (an account appears once the service or chat has run)"
        )
    return found


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RegistryError(f"unknown adapter kind {kind!r}; use one of {', '.join(KINDS)}")


def next_version(session: Session, account: str, kind: str) -> int:
    """The version number the next adapter of (account, kind) will get."""
    _check_kind(kind)
    latest = session.scalar(
        select(func.max(m.Adapter.version)).where(
            m.Adapter.account_id == _account_id(session, account), m.Adapter.kind == kind
        )
    )
    return (latest or 0) + 1


def version_name(account: str, kind: str, version: int) -> str:
    return f"{account}-{kind}-v{version}"


def register(
    session: Session,
    *,
    account: str,
    kind: str,
    version: int,
    path: Path,
    base_model: str,
    data_hash: str | None,
    config: dict[str, Any],
    metrics: dict[str, Any],
    parent: str | None = None,
) -> AdapterVersion:
    """Record a trained adapter as a candidate. Its name is `<account>-<kind>-v<version>`."""
    _check_kind(kind)
    account_id = _account_id(session, account)
    name = version_name(account, kind, version)
    if session.scalars(select(m.Adapter.id).where(m.Adapter.name == name)).first() is not None:
        raise RegistryError(f"adapter {name} is already registered; train again for a new version")
    parent_row = _row(session, parent) if parent is not None else None
    row = m.Adapter(
        account_id=account_id,
        name=name,
        kind=kind,
        version=version,
        path=str(path),
        base_model=base_model,
        data_hash=data_hash,
        config=config,
        metrics=metrics,
        parent_id=parent_row.id if parent_row is not None else None,
        status=Status.CANDIDATE,
    )
    session.add(row)
    session.flush()
    return _version(session, row)


def _row(session: Session, name: str) -> m.Adapter:
    row = session.scalars(select(m.Adapter).where(m.Adapter.name == name)).first()
    if row is None:
        raise RegistryError(f"no adapter named {name!r}; see `autoreply adapters list`")
    return row


def get(session: Session, name: str) -> AdapterVersion:
    return _version(session, _row(session, name))


def versions(
    session: Session, account: str | None = None, kind: str | None = None
) -> list[AdapterVersion]:
    """Every version, newest first within each (account, kind)."""
    query = select(m.Adapter).order_by(
        m.Adapter.account_id, m.Adapter.kind, m.Adapter.version.desc()
    )
    if account is not None:
        query = query.where(m.Adapter.account_id == _account_id(session, account))
    if kind is not None:
        _check_kind(kind)
        query = query.where(m.Adapter.kind == kind)
    return [_version(session, row) for row in session.scalars(query)]


def _active_row(session: Session, account_id: int, kind: str) -> m.Adapter | None:
    return session.scalars(
        select(m.Adapter).where(
            m.Adapter.account_id == account_id,
            m.Adapter.kind == kind,
            m.Adapter.status == Status.ACTIVE,
        )
    ).first()


def active(session: Session, account: str, kind: str) -> AdapterVersion | None:
    _check_kind(kind)
    row = _active_row(session, _account_id(session, account), kind)
    return _version(session, row) if row is not None else None


def active_names(session: Session) -> dict[tuple[str, str], tuple[str, str]]:
    """(account, kind) -> (adapter name, path) of every active adapter: what a service polls."""
    rows = session.execute(
        select(m.Account.name, m.Adapter.kind, m.Adapter.name, m.Adapter.path)
        .join(m.Account, m.Account.id == m.Adapter.account_id)
        .where(m.Adapter.status == Status.ACTIVE)
    )
    return {(account, kind): (name, path) for account, kind, name, path in rows}


def set_metrics(session: Session, name: str, metrics: dict[str, Any]) -> AdapterVersion:
    """Merge `metrics` into the version's stored metrics (the eval gate's results)."""
    row = _row(session, name)
    row.metrics = {**(row.metrics or {}), **metrics}
    session.flush()
    return _version(session, row)


def reject(session: Session, name: str, reason: str) -> AdapterVersion:
    """Mark a candidate rejected (it failed the eval gate); the reason lands in its metrics."""
    row = _row(session, name)
    if row.status == Status.ACTIVE:
        raise RegistryError(f"{name} is active; roll it back instead of rejecting it")
    row.status = Status.REJECTED
    row.metrics = {**(row.metrics or {}), "rejected_because": reason}
    session.flush()
    return _version(session, row)


def promote(session: Session, name: str) -> tuple[AdapterVersion, AdapterVersion | None]:
    """Make `name` the active version of its (account, kind); returns (new, previous)."""
    row = _row(session, name)
    if row.status == Status.ACTIVE:
        raise RegistryError(f"{name} is already the active {row.kind} adapter")
    if row.account_id is None:
        raise RegistryError(f"{name} belongs to no account; register it again with --account")
    previous = _active_row(session, row.account_id, row.kind)
    now = utcnow()
    if previous is not None:
        previous.status = Status.RETIRED
        previous.retired_at = now
        # The partial "one active" rule is kept by this code, not by an index (SQLite and
        # PostgreSQL spell partial unique indexes differently): flush the retirement first.
        session.flush()
    row.status = Status.ACTIVE
    row.promoted_at = now
    row.retired_at = None
    session.flush()
    return _version(session, row), _version(session, previous) if previous else None


def rollback(
    session: Session, account: str, kind: str
) -> tuple[AdapterVersion, AdapterVersion | None]:
    """Retire the active (account, kind) version and restore the most recently retired one.

    Returns (retired, restored); restored is None when there was none before, and the account
    then drafts with its base model (or lexical rules) again.
    """
    _check_kind(kind)
    account_id = _account_id(session, account)
    current = _active_row(session, account_id, kind)
    if current is None:
        raise RegistryError(f"{account} has no active {kind} adapter to roll back")
    before = session.scalars(
        select(m.Adapter)
        .where(
            m.Adapter.account_id == account_id,
            m.Adapter.kind == kind,
            m.Adapter.status == Status.RETIRED,
            m.Adapter.id != current.id,
        )
        .order_by(m.Adapter.retired_at.desc(), m.Adapter.id.desc())
    ).first()
    now = utcnow()
    # A rolled-back version is rejected, so a second rollback does not bring it back.
    current.status = Status.REJECTED
    current.retired_at = now
    current.metrics = {**(current.metrics or {}), "rolled_back_at": now.isoformat()}
    session.flush()
    if before is not None:
        before.status = Status.ACTIVE
        before.promoted_at = now
        before.retired_at = None
        session.flush()
    return _version(session, current), _version(session, before) if before else None
