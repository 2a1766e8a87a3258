"""The figures `/metrics` reads from the database: a few GROUP BY queries per scrape.

They live in the database, not in a process, so a standalone `autoreply web` shows them and
every serving process agrees. Each is one grouped scan over an indexed or small table; at tens
of thousands of messages a scrape takes milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.domain import DraftStatus, OutboxStatus, OutgoingKind
from bot.storage import models as m


@dataclass(frozen=True, slots=True)
class ActiveAdapter:
    account: str
    kind: str  # reply, intent, sentiment or safety
    name: str
    version: int


@dataclass(frozen=True, slots=True)
class Figures:
    """Counts keyed by account name (and the other labels, in the order named)."""

    accounts: tuple[str, ...]
    messages_in: dict[str, int] = field(default_factory=dict)
    unhandled: dict[str, int] = field(default_factory=dict)  # stored, not decided yet
    decisions: dict[tuple[str, str], int] = field(default_factory=dict)  # (account, decision)
    drafts: dict[tuple[str, str], int] = field(default_factory=dict)  # (account, status)
    outbox: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (account, kind, status)
    adapters: tuple[ActiveAdapter, ...] = ()

    def queue_depth(self, account: str) -> int:
        """Drafts of `account` waiting for a moderator."""
        return self.drafts.get((account, DraftStatus.QUEUED.value), 0)

    def replies_sent(self, account: str) -> int:
        """Replies delivered in users' chats (cards and notices are not replies)."""
        return self.outbox.get((account, OutgoingKind.REPLY.value, OutboxStatus.SENT.value), 0)


def figures(session: Session) -> Figures:
    names = dict(session.execute(select(m.Account.id, m.Account.name)).all())
    messages_in: dict[str, int] = {}
    unhandled: dict[str, int] = {}
    decisions: dict[tuple[str, str], int] = {}
    inbound = session.execute(
        select(m.Message.account_id, m.Message.decision, func.count())
        .where(m.Message.direction == m.Direction.INBOUND)
        .group_by(m.Message.account_id, m.Message.decision)
    )
    for account_id, decision, n in inbound:
        account = names[account_id]
        messages_in[account] = messages_in.get(account, 0) + n
        if decision is None:
            unhandled[account] = n
        else:
            decisions[(account, decision.value)] = n
    drafts = session.execute(
        select(m.Message.account_id, m.ReplyDraft.status, func.count())
        .join(m.Message, m.Message.id == m.ReplyDraft.message_id)
        .group_by(m.Message.account_id, m.ReplyDraft.status)
    )
    outbox = session.execute(
        select(
            m.OutboxItem.account_id, m.OutboxItem.kind, m.OutboxItem.status, func.count()
        ).group_by(m.OutboxItem.account_id, m.OutboxItem.kind, m.OutboxItem.status)
    )
    adapters = session.execute(
        select(m.Account.name, m.Adapter.kind, m.Adapter.name, m.Adapter.version)
        .join(m.Account, m.Account.id == m.Adapter.account_id)
        .where(m.Adapter.status == m.AdapterStatus.ACTIVE)
        .order_by(m.Account.name, m.Adapter.kind)
    )
    return Figures(
        accounts=tuple(sorted(names.values())),
        messages_in=messages_in,
        unhandled=unhandled,
        decisions=decisions,
        drafts={(names[a], status.value): n for a, status, n in drafts},
        outbox={(names[a], kind.value, status.value): n for a, kind, status, n in outbox},
        adapters=tuple(ActiveAdapter(*row) for row in adapters),
    )
