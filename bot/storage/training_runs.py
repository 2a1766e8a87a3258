"""Training runs: one row per export-train-evaluate attempt, whatever its outcome.

A run starts `running` and ends exactly once: `succeeded`, `failed` or `aborted`. Every ending
is one conditional UPDATE (WHERE status = 'running'), so when the training process and its
supervisor race (the child writes its result as the service aborts it), the first one wins and
the other learns it came second.

A run that decided there was nothing worth training succeeds with the reason under
`metrics["skipped"]`. Runs started under a lease carry `lease` and `holder` in their params;
when that lease has lapsed, or passed to another holder, nobody is watching the run any more:
`abort_stale` ends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.domain import as_utc, utcnow
from bot.errors import NotFoundError
from bot.storage import leases
from bot.storage import models as m

Status = m.RunStatus
ERROR_CHARS = 4000
SKIPPED = "skipped"  # metrics key of a run that decided there was nothing worth training


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    account: str | None
    kind: str
    status: str
    adapter: str | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def skipped(self) -> bool:
        return SKIPPED in self.metrics


def _run(session: Session, row: m.TrainingRun) -> Run:
    account = session.get(m.Account, row.account_id) if row.account_id is not None else None
    adapter = session.get(m.Adapter, row.adapter_id) if row.adapter_id is not None else None
    return Run(
        id=row.id,
        account=account.name if account is not None else None,
        kind=row.kind,
        status=str(row.status),
        adapter=adapter.name if adapter is not None else None,
        params=dict(row.params or {}),
        metrics=dict(row.metrics or {}),
        error=row.error,
        started_at=as_utc(row.started_at) if row.started_at else None,
        finished_at=as_utc(row.finished_at) if row.finished_at else None,
    )


def _account_id(session: Session, account: str | None) -> int | None:
    if account is None:
        return None
    found = session.scalars(select(m.Account.id).where(m.Account.name == account)).first()
    if found is None:
        raise NotFoundError(
            f"no account named {account!r} in the database; it appears once the service (or "
            "`autoreply chat`) has run for it"
        )
    return found


def _adapter_id(session: Session, adapter: str | None) -> int | None:
    if adapter is None:
        return None
    return session.scalars(select(m.Adapter.id).where(m.Adapter.name == adapter)).first()


def start(session: Session, *, account: str | None, kind: str, params: dict[str, Any]) -> int:
    """Record a run that is starting; returns its id."""
    row = m.TrainingRun(
        account_id=_account_id(session, account),
        kind=kind,
        status=Status.RUNNING,
        params=params,
        metrics={},
        started_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row.id


def add_params(session: Session, run_id: int, **more: Any) -> None:
    """Merge what a run learnt on the way (its data, how many examples) into its params."""
    row = session.get(m.TrainingRun, run_id)
    if row is None:
        raise NotFoundError(f"no training run {run_id} to add parameters to")
    row.params = {**(row.params or {}), **more}
    session.flush()


def _end(session: Session, run_id: int, **values: Any) -> bool:
    ended = session.execute(
        update(m.TrainingRun)
        .where(m.TrainingRun.id == run_id, m.TrainingRun.status == Status.RUNNING)
        .values(finished_at=utcnow(), **values)
    )
    return bool(getattr(ended, "rowcount", 0))


def succeed(
    session: Session, run_id: int, *, metrics: dict[str, Any], adapter: str | None = None
) -> bool:
    """End a running run as succeeded (with the adapter it produced, if any). False when it
    had already ended (aborted meanwhile, say): nothing is changed then."""
    return _end(
        session,
        run_id,
        status=Status.SUCCEEDED,
        metrics=metrics,
        adapter_id=_adapter_id(session, adapter),
    )


def fail(
    session: Session,
    run_id: int,
    *,
    error: str,
    metrics: dict[str, Any] | None = None,
    adapter: str | None = None,
) -> bool:
    """End a running run as failed with what went wrong; False when it had already ended."""
    values: dict[str, Any] = {"status": Status.FAILED, "error": error[-ERROR_CHARS:]}
    if metrics is not None:
        values["metrics"] = metrics
    if adapter is not None:
        values["adapter_id"] = _adapter_id(session, adapter)
    return _end(session, run_id, **values)


def abort(session: Session, run_id: int, reason: str) -> bool:
    """End a running run as aborted (stopped from outside); False when it had already ended."""
    return _end(session, run_id, status=Status.ABORTED, error=reason[-ERROR_CHARS:])


def get(session: Session, run_id: int) -> Run:
    row = session.get(m.TrainingRun, run_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"no training run {run_id}; list them with `autoreply train runs`")
    return _run(session, row)


def recent(
    session: Session, *, account: str | None = None, kind: str | None = None, limit: int = 20
) -> list[Run]:
    """The newest runs first."""
    query = select(m.TrainingRun).order_by(m.TrainingRun.id.desc()).limit(limit)
    if account is not None:
        query = query.where(m.TrainingRun.account_id == _account_id(session, account))
    if kind is not None:
        query = query.where(m.TrainingRun.kind == kind)
    return [_run(session, row) for row in session.scalars(query)]


def last_trained(session: Session, account: str, kind: str) -> Run | None:
    """The newest run of (account, kind) that trained and finished (not a skipped night):
    examples newer than its start are the "new" ones."""
    rows = session.scalars(
        select(m.TrainingRun)
        .where(
            m.TrainingRun.account_id == _account_id(session, account),
            m.TrainingRun.kind == kind,
            m.TrainingRun.status == Status.SUCCEEDED,
        )
        .order_by(m.TrainingRun.id.desc())
    )
    for row in rows:
        if SKIPPED not in (row.metrics or {}):
            return _run(session, row)
    return None


def abort_stale(
    session: Session, lease: str, *, now: datetime | None = None, reason: str | None = None
) -> list[int]:
    """Abort runs left `running` under `lease` by a holder that no longer holds it (its
    process died, or stalled past the expiry and lost it). Returns their ids.

    Runs started without a lease (no `lease` in their params) are left alone.
    """
    current = leases.holder(session, lease, now=now)
    running = session.scalars(
        select(m.TrainingRun).where(m.TrainingRun.status == Status.RUNNING)
    ).all()
    stale = [
        row.id
        for row in running
        if (row.params or {}).get("lease") == lease and (row.params or {}).get("holder") != current
    ]
    why = reason or (
        "the process running it stopped without ending it (its lease lapsed); "
        "the next nightly run trains again"
    )
    return [run_id for run_id in stale if abort(session, run_id, why)]
