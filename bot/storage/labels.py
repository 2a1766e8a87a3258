"""Writing labelled examples: moderators' corrections and imported files (`label_examples`).

Callers validate labels first (`bot/labels.py`); these functions only store them. Reading them
back for training is `training_data.labels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.storage import models as m

SOURCE_CHARS = 256  # label_examples.source


@dataclass(frozen=True, slots=True)
class NewLabel:
    """One text with its label, as read from a file."""

    text: str
    label: str


def set_for_message(
    session: Session,
    *,
    account_id: int,
    message_id: int,
    task: str,
    text: str,
    label: str,
    source: str,
) -> None:
    """The message's label for `task`, replacing an earlier correction (one row per message
    and task). INSERT ... ON CONFLICT DO UPDATE, so two moderators at once cannot both insert."""
    values = {
        "account_id": account_id,
        "message_id": message_id,
        "task": task,
        "text": text,
        "label": label,
        "source": source[:SOURCE_CHARS],
    }
    changed = {key: values[key] for key in ("text", "label", "source")}
    dialect = session.get_bind().dialect.name
    stmt: Insert
    if dialect == "postgresql":
        pg = postgresql.insert(m.LabelExample).values(**values)
        stmt = pg.on_conflict_do_update(index_elements=["message_id", "task"], set_=changed)
    elif dialect == "sqlite":
        lite = sqlite.insert(m.LabelExample).values(**values)
        stmt = lite.on_conflict_do_update(index_elements=["message_id", "task"], set_=changed)
    else:  # pragma: no cover - only the two supported backends reach here
        raise NotImplementedError(f"unsupported database dialect {dialect!r}")
    session.execute(stmt)


def import_rows(
    session: Session,
    *,
    account_id: int | None,
    task: str,
    rows: Sequence[NewLabel],
    source: str,
) -> int:
    """Add imported examples (no message); returns how many were new. Rows this source
    already gave for the same account and task are skipped, so importing a file twice adds
    nothing the second time."""
    owner = (
        m.LabelExample.account_id.is_(None)
        if account_id is None
        else m.LabelExample.account_id == account_id
    )
    source = source[:SOURCE_CHARS]
    present = {
        (text, label)
        for text, label in session.execute(
            select(m.LabelExample.text, m.LabelExample.label).where(
                owner, m.LabelExample.task == task, m.LabelExample.source == source
            )
        )
    }
    fresh: list[NewLabel] = []
    for row in rows:
        if (row.text, row.label) not in present:
            present.add((row.text, row.label))
            fresh.append(row)
    session.add_all(
        m.LabelExample(
            account_id=account_id, task=task, text=row.text, label=row.label, source=source
        )
        for row in fresh
    )
    return len(fresh)
