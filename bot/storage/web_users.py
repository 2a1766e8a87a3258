"""Dashboard users (moderators and operators) and their one-time login links.

Passwords arrive here already hashed (bot/web/passwords.py owns argon2); this module only
stores and reads rows. `accounts` None means every account.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.domain import ActorRole, ChatKind, as_utc, utcnow
from bot.errors import InputError, NotFoundError
from bot.storage import history
from bot.storage import models as m


@dataclass(frozen=True, slots=True)
class WebUserRow:
    id: int
    name: str
    password_hash: str
    role: ActorRole
    accounts: frozenset[str] | None
    platform: str | None
    platform_user_id: str | None
    created_at: datetime


def _row(user: m.WebUser) -> WebUserRow:
    return WebUserRow(
        id=user.id,
        name=user.name,
        password_hash=user.password_hash,
        role=ActorRole(user.role),
        accounts=None if user.accounts is None else frozenset(user.accounts),
        platform=user.platform,
        platform_user_id=user.platform_user_id,
        created_at=as_utc(user.created_at),
    )


def add(
    session: Session,
    name: str,
    password_hash: str,
    role: ActorRole,
    accounts: frozenset[str] | None,
    *,
    platform: str | None = None,
    platform_user_id: str | None = None,
) -> WebUserRow:
    """Create a user. A taken name raises InputError (the transaction is left usable)."""
    if by_name(session, name) is not None:
        raise InputError(
            f"there is already a dashboard user {name!r}; pick another name, or change the "
            f"password with `autoreply users passwd {name}`"
        )
    user = m.WebUser(
        name=name,
        password_hash=password_hash,
        role=role.value,
        accounts=None if accounts is None else sorted(accounts),
        platform=platform,
        platform_user_id=platform_user_id,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # created by someone else at the same moment
        raise InputError(f"there is already a dashboard user {name!r}; pick another name") from exc
    return _row(user)


def by_name(session: Session, name: str) -> WebUserRow | None:
    user = session.scalar(
        select(m.WebUser).where(m.WebUser.name == name, m.WebUser.disabled_at.is_(None))
    )
    return _row(user) if user else None


def by_id(session: Session, user_id: int) -> WebUserRow | None:
    user = session.get(m.WebUser, user_id)
    return _row(user) if user is not None and user.disabled_at is None else None


def all_users(session: Session) -> list[WebUserRow]:
    users = session.scalars(
        select(m.WebUser).where(m.WebUser.disabled_at.is_(None)).order_by(m.WebUser.name)
    )
    return [_row(user) for user in users]


def remove(session: Session, name: str) -> None:
    """Delete a user; their sessions stop working at their next request. Audit rows keep the
    name they acted under (text, not a reference)."""
    done = session.execute(delete(m.WebUser).where(m.WebUser.name == name))
    if not getattr(done, "rowcount", 0):
        raise NotFoundError(_no_user(name))


def set_password(session: Session, name: str, password_hash: str) -> None:
    """Replace a password hash; sessions signed in with the old password end (see auth)."""
    done = session.execute(
        update(m.WebUser).where(m.WebUser.name == name).values(password_hash=password_hash)
    )
    if not getattr(done, "rowcount", 0):
        raise NotFoundError(_no_user(name))


def _no_user(name: str) -> str:
    return f"there is no dashboard user {name!r}; see `autoreply users list`"


# --- one-time login links --------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_link(session: Session, user_id: int, token: str, expires_at: datetime) -> None:
    session.add(
        m.WebLoginLink(token_hash=token_hash(token), user_id=user_id, expires_at=expires_at)
    )


def use_link(session: Session, token: str) -> WebUserRow | None:
    """The user a link logs in, once: a conditional UPDATE marks it used, so a second click
    (or a second tab) gets None, as does an expired link."""
    now = utcnow()
    digest = token_hash(token)
    claimed = session.execute(
        update(m.WebLoginLink)
        .where(
            m.WebLoginLink.token_hash == digest,
            m.WebLoginLink.used_at.is_(None),
            m.WebLoginLink.expires_at > now,
        )
        .values(used_at=now)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    user_id = session.scalar(
        select(m.WebLoginLink.user_id).where(m.WebLoginLink.token_hash == digest)
    )
    return by_id(session, user_id) if user_id is not None else None


def private_chat(session: Session, account_id: int, chat_id: str) -> int | None:
    """The conversation id of the account's private chat `chat_id` (made when missing), or
    None when that chat is known to be a group or channel: login links never go there."""
    conversation_id = history.ensure_conversation_id(
        session, account_id, chat_id, ChatKind.PRIVATE, None
    )
    kind = session.scalar(select(m.Conversation.kind).where(m.Conversation.id == conversation_id))
    return conversation_id if kind is ChatKind.PRIVATE else None
