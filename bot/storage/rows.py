"""Small helpers for writing rows that several workers may race to create."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.storage import models as m


def insert_ignoring_conflicts(
    session: Session, model: type[m.Base], values: dict[str, Any]
) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when a row was inserted.

    Safe when several workers race to create the same row, without savepoints.
    """
    dialect = session.get_bind().dialect.name
    stmt: Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(model).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported backends reach here
        raise NotImplementedError(f"unsupported database dialect {dialect!r}")
    # rowcount is -1 for this statement under psycopg; RETURNING says for sure.
    inserted = session.execute(stmt.returning(model.__table__.c.id)).first()
    return inserted is not None


_Row = TypeVar("_Row", bound=m.Base)


def get_or_create(
    session: Session, model: type[_Row], keys: dict[str, Any], extra: dict[str, Any] | None = None
) -> _Row:
    """The row with these unique `keys`, inserting it (with `extra`) when missing.

    Looks first, so the usual case writes nothing; a race with another worker is settled by
    the insert's ON CONFLICT DO NOTHING.
    """
    where = [getattr(model, name) == value for name, value in keys.items()]
    row = session.scalars(select(model).where(*where)).first()
    if row is None:
        insert_ignoring_conflicts(session, model, {**keys, **(extra or {})})
        row = session.scalars(select(model).where(*where)).one()
    return row
