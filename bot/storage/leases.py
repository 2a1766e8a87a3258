"""Named leases: at most one holder at a time across processes (the nightly retraining runner).

Every change is one conditional statement, so the same code is correct on SQLite (writers take
turns under BEGIN IMMEDIATE) and PostgreSQL (a second UPDATE of the row waits for the first to
commit, then re-checks its WHERE against the new row):

- acquire: UPDATE ... WHERE holder = me OR expires_at < now; if no row matched, INSERT ... ON
  CONFLICT DO NOTHING for the very first taker. Exactly one racer wins either way.
- renew: UPDATE ... WHERE holder = me. It fails once someone else has taken the lease (after it
  expired) or it was released, so a stalled holder learns it lost.
- release: DELETE ... WHERE holder = me.

Times are the callers' clock (UTC); holders on one machine, or on machines with synced clocks,
see the same expiry. Each function runs in the caller's transaction: commit to make it count.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Insert, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.domain import as_utc, utcnow
from bot.storage import models as m


@dataclass(frozen=True, slots=True)
class LeaseState:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime

    def live(self, now: datetime | None = None) -> bool:
        return self.expires_at >= (now or utcnow())


def new_holder(role: str = "autoreply") -> str:
    """A holder id unique to this process and call: host, pid and a random suffix."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(
    session: Session, name: str, holder: str, ttl_s: float, *, now: datetime | None = None
) -> bool:
    """Take the lease if it is free or expired, or renew it if `holder` has it already.

    True when `holder` holds it (until now + ttl_s) once the transaction commits.
    """
    now = now or utcnow()
    expires = now + timedelta(seconds=ttl_s)
    taken = session.execute(
        update(m.Lease)
        .where(m.Lease.name == name, or_(m.Lease.holder == holder, m.Lease.expires_at < now))
        .values(
            holder=holder,
            # A renewal keeps when the holder first got it; a takeover starts afresh.
            acquired_at=case((m.Lease.holder == holder, m.Lease.acquired_at), else_=now),
            expires_at=expires,
        )
    )
    if getattr(taken, "rowcount", 0):
        return True
    return _insert_first(session, name, holder, now, expires)


def _insert_first(
    session: Session, name: str, holder: str, now: datetime, expires: datetime
) -> bool:
    """Create the lease row; False when it exists already (held by someone, or a racer's)."""
    values = {"name": name, "holder": holder, "acquired_at": now, "expires_at": expires}
    dialect = session.get_bind().dialect.name
    stmt: Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(m.Lease).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(m.Lease).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported backends reach here
        raise NotImplementedError(f"unsupported database dialect {dialect!r}")
    # rowcount is unreliable for ON CONFLICT DO NOTHING under psycopg; RETURNING is not.
    return session.execute(stmt.returning(m.Lease.name)).first() is not None


def renew(
    session: Session, name: str, holder: str, ttl_s: float, *, now: datetime | None = None
) -> bool:
    """Extend a lease `holder` still has. False when it was taken over or released meanwhile:
    the caller must stop the work the lease guards."""
    now = now or utcnow()
    renewed = session.execute(
        update(m.Lease)
        .where(m.Lease.name == name, m.Lease.holder == holder)
        .values(expires_at=now + timedelta(seconds=ttl_s))
    )
    return bool(getattr(renewed, "rowcount", 0))


def release(session: Session, name: str, holder: str) -> bool:
    """Give the lease up; False (and nothing changed) when `holder` no longer has it."""
    gone = session.execute(delete(m.Lease).where(m.Lease.name == name, m.Lease.holder == holder))
    return bool(getattr(gone, "rowcount", 0))


def get(session: Session, name: str) -> LeaseState | None:
    """The lease row as it is, expired or not."""
    row = session.get(m.Lease, name, populate_existing=True)
    if row is None:
        return None
    return LeaseState(row.name, row.holder, as_utc(row.acquired_at), as_utc(row.expires_at))


def holder(session: Session, name: str, *, now: datetime | None = None) -> str | None:
    """Who holds the lease now; None when nobody does (never taken, released or expired)."""
    row = session.execute(
        select(m.Lease.holder, m.Lease.expires_at).where(m.Lease.name == name)
    ).first()
    if row is None:
        return None
    who, expires_at = row
    return None if as_utc(expires_at) < (now or utcnow()) else who
