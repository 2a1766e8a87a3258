"""Account rows: binding config names to platform identities, runtime state, queue depth.

The config names accounts; the database keys them by the platform's own id (`platform`,
`handle`) so history survives a rename. `bind` makes the row of a configured account carry its
configured name, moving the name off any other row that held it (that row keeps its history
under `<platform>-<handle>`).
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.domain import AccountState, DraftStatus, OutboxStatus, as_utc, utcnow
from bot.storage import models as m
from bot.storage.rows import get_or_create

NAME_LENGTH = 64


def _fallback_name(session: Session, row: m.Account) -> str:
    """`<platform>-<handle>`, or `<platform>-<id>` when that is too long or already taken."""
    name = f"{row.platform}-{row.handle}"
    taken = session.scalars(select(m.Account.id).where(m.Account.name == name)).first()
    if len(name) > NAME_LENGTH or (taken is not None and taken != row.id):
        name = f"{row.platform}-{row.id}"
    return name


def _state(row: m.Account, queued: int = 0, in_doubt: int = 0) -> AccountState:
    return AccountState(
        row.id,
        row.name,
        row.platform,
        row.handle,
        row.paused,
        queued,
        in_doubt,
        row.health,
        row.health_note,
        as_utc(row.health_at) if row.health_at else None,
    )


def bind(session: Session, name: str, platform: str, handle: str) -> AccountState:
    """The row of the account (platform, handle), named `name`; created when missing."""
    holder = session.scalars(select(m.Account).where(m.Account.name == name)).first()
    row = session.scalars(
        select(m.Account).where(m.Account.platform == platform, m.Account.handle == handle)
    ).first()
    if holder is not None and holder is not row:
        # The config gave this name to another identity (a new bot token, say): the old row
        # keeps its history under a name of its own.
        holder.name = _fallback_name(session, holder)
        session.flush()
    if row is None:
        row = get_or_create(
            session, m.Account, {"platform": platform, "handle": handle}, {"name": name}
        )
    if row.name != name:
        row.name = name
        session.flush()
    return _state(row)


def by_name(session: Session, name: str) -> AccountState | None:
    row = session.scalars(select(m.Account).where(m.Account.name == name)).first()
    return _state(row) if row else None


def ensure(session: Session, platform: str, name: str) -> AccountState:
    """The account named `name`, created (handle = name) when the service has not bound it:
    consoles and tests, whose handle is their name."""
    row = session.scalars(select(m.Account).where(m.Account.name == name)).first()
    if row is None:
        row = get_or_create(
            session, m.Account, {"platform": platform, "handle": name}, {"name": name}
        )
    elif row.platform != platform:
        raise ValueError(
            f"account {name!r} is a {row.platform} account in the database, not {platform}"
        )
    return _state(row)


def states(session: Session, names: tuple[str, ...] | None = None) -> list[AccountState]:
    """Accounts with their queue depth and replies in doubt; all of them when `names` is None."""
    queued = (
        select(m.Message.account_id, func.count(m.ReplyDraft.id).label("n"))
        .join(m.ReplyDraft, m.ReplyDraft.message_id == m.Message.id)
        .where(m.ReplyDraft.status == DraftStatus.QUEUED)
        .group_by(m.Message.account_id)
        .subquery()
    )
    doubt = (
        select(m.OutboxItem.account_id, func.count(m.OutboxItem.id).label("n"))
        .where(m.OutboxItem.status == OutboxStatus.UNKNOWN)
        .group_by(m.OutboxItem.account_id)
        .subquery()
    )
    stmt = (
        select(m.Account, queued.c.n, doubt.c.n)
        .outerjoin(queued, queued.c.account_id == m.Account.id)
        .outerjoin(doubt, doubt.c.account_id == m.Account.id)
        .order_by(m.Account.id)
    )
    if names is not None:
        stmt = stmt.where(m.Account.name.in_(names))
    return [_state(row, q or 0, d or 0) for row, q, d in session.execute(stmt).all()]


def set_paused(session: Session, account_id: int, paused: bool) -> None:
    session.execute(update(m.Account).where(m.Account.id == account_id).values(paused=paused))


def set_chat_paused(session: Session, conversation_id: int, paused: bool) -> None:
    session.execute(
        update(m.Conversation).where(m.Conversation.id == conversation_id).values(paused=paused)
    )


def conversation_id(session: Session, account_id: int, chat_id: str) -> int | None:
    return session.scalars(
        select(m.Conversation.id).where(
            m.Conversation.account_id == account_id, m.Conversation.chat_id == chat_id
        )
    ).first()


def set_health(session: Session, name: str, state: str, note: str | None) -> None:
    session.execute(
        update(m.Account)
        .where(m.Account.name == name)
        .values(health=state, health_note=note, health_at=utcnow())
    )


def heartbeat(session: Session, names: list[str]) -> None:
    session.execute(update(m.Account).where(m.Account.name.in_(names)).values(health_at=utcnow()))


def of_conversation(session: Session, conversation_id: int) -> AccountState:
    conversation = session.get_one(m.Conversation, conversation_id)
    return _state(session.get_one(m.Account, conversation.account_id))
