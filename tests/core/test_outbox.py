"""Outbox delivery against both database backends, with a recording channel."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update

from bot.channels.base import SendError
from bot.domain import ChatKind, Incoming, Outgoing
from bot.outbox import Outbox, RetryPolicy
from bot.storage import history, outbox_store
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import OPERATOR, RecordingChannel, moderation

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)


def _enqueue(db: Database, chat: str, texts: list[str], kind: ChatKind = ChatKind.GROUP) -> int:
    with db.session() as s:
        conversation_id = 0
        for i, text in enumerate(texts):
            stored = history.ingest(
                s,
                Incoming(
                    platform="console",
                    account="acct",
                    chat_id=chat,
                    message_id=f"{chat}-{i}",
                    user_id=chat if kind is ChatKind.PRIVATE else "u1",
                    text=f"question {i}",
                    chat_kind=kind,
                ),
            )
            conversation_id = stored.conversation_id
            outbox_store.enqueue(
                s,
                account_id=stored.account_id,
                conversation_id=stored.conversation_id,
                text=text,
                draft_id=None,
                reply_to_id=stored.message_id,
            )
        return conversation_id


def _drain(db: Database, channel: RecordingChannel, *conversations: int) -> None:
    """Send everything pending in these conversations, then stop."""

    async def go() -> None:
        outbox = Outbox(db, {"acct": channel}, FAST)
        for conversation_id in conversations:
            outbox.notify(conversation_id)
        await outbox.idle()
        await outbox.close()

    asyncio.run(go())


def _statuses(db: Database) -> list[str]:
    with db.session() as s:
        return [r.value for r in s.scalars(select(m.OutboxItem.status).order_by(m.OutboxItem.id))]


def test_each_chat_sends_in_order_and_records_outbound(migrated_db: Database) -> None:
    a = _enqueue(migrated_db, "A", ["a1", "a2", "a3"])
    b = _enqueue(migrated_db, "B", ["b1", "b2"])
    channel = RecordingChannel(delay=0.01)

    _drain(migrated_db, channel, a, b)
    by_chat: dict[str, list[str]] = {}
    for sent in channel.sent:
        by_chat.setdefault(sent.message.chat_id, []).append(sent.message.text)
    assert by_chat == {"A": ["a1", "a2", "a3"], "B": ["b1", "b2"]}
    assert all(s.message.reply_to_message_id for s in channel.sent)
    assert _statuses(migrated_db) == ["sent"] * 5
    with migrated_db.session() as s:
        outbound = s.scalar(
            select(func.count())
            .select_from(m.Message)
            .where(m.Message.direction == m.Direction.OUTBOUND, m.Message.sent_at.is_not(None))
        )
    assert outbound == 5


def test_rate_limit_waits_in_its_own_chat_only(migrated_db: Database) -> None:
    a = _enqueue(migrated_db, "A", ["a1", "a2"])
    b = _enqueue(migrated_db, "B", ["b1", "b2", "b3"])

    tried: set[str] = set()

    def limit_first_a(message: Outgoing, attempt: int) -> SendError | None:
        # `attempt` counts every chat's sends; whether B or A goes first is up to the loop.
        first_try = message.text not in tried
        tried.add(message.text)
        if message.text == "a1" and first_try:
            return SendError("Too Many Requests", retry_after=1.0)
        return None

    channel = RecordingChannel(fail=limit_first_a)

    _drain(migrated_db, channel, a, b)
    order = [s.message.text for s in channel.sent]
    # Chat B did not wait for chat A's back-off, and chat A kept its own order.
    assert order.index("b3") < order.index("a1") < order.index("a2")
    assert _statuses(migrated_db) == ["sent"] * 5
    with migrated_db.session() as s:
        first = s.scalars(select(m.OutboxItem).order_by(m.OutboxItem.id)).first()
        assert first is not None and first.attempts == 1  # the rate-limited try was refunded


def test_in_doubt_send_is_never_retried(migrated_db: Database) -> None:
    a = _enqueue(migrated_db, "A", ["a1", "a2"])

    def timeout_a1(message: Outgoing, attempt: int) -> SendError | None:
        if message.text == "a1":
            return SendError("read timed out", in_doubt=True)
        return None

    channel = RecordingChannel(fail=timeout_a1)

    async def go() -> None:
        outbox = Outbox(migrated_db, {"acct": channel}, FAST)
        outbox.notify(a)
        await outbox.idle()
        await outbox.sweep()
        await outbox.idle()
        await outbox.close()

    asyncio.run(go())
    assert [o.text for o in channel.attempts] == ["a1", "a2"]
    assert _statuses(migrated_db) == ["unknown", "sent"]
    assert [row.text for row in moderation(migrated_db).in_doubt(OPERATOR)] == ["a1"]


def test_a_disconnected_account_keeps_its_replies_pending_without_using_tries(
    migrated_db: Database,
) -> None:
    a = _enqueue(migrated_db, "A", ["a1"])
    channel = RecordingChannel()
    channel.connected = False

    async def go() -> None:
        outbox = Outbox(migrated_db, {"acct": channel}, FAST)
        outbox.notify(a)
        await asyncio.sleep(0.3)
        assert _statuses(migrated_db) == ["pending"]  # nothing was sent, nothing in doubt
        channel.connected = True
        with migrated_db.session() as s:  # no need to wait for the next look
            s.execute(update(m.OutboxItem).values(next_attempt_at=None))
        outbox.notify(a)
        await outbox.idle()
        await outbox.close()

    asyncio.run(go())
    assert channel.attempts == [s.message for s in channel.sent]  # one send, never a failure
    assert _statuses(migrated_db) == ["sent"]
    with migrated_db.session() as s:
        assert s.scalars(select(m.OutboxItem.attempts)).one() == 1


def test_transient_errors_back_off_then_fail(migrated_db: Database) -> None:
    a = _enqueue(migrated_db, "A", ["a1"])
    channel = RecordingChannel(fail=lambda message, attempt: SendError("connection refused"))

    _drain(migrated_db, channel, a)
    assert len(channel.attempts) == FAST.max_attempts
    assert _statuses(migrated_db) == ["failed"]


def test_blocked_user_is_marked_unreachable(migrated_db: Database) -> None:
    a = _enqueue(migrated_db, "42", ["r1", "r2"], kind=ChatKind.PRIVATE)
    channel = RecordingChannel(
        fail=lambda message, attempt: SendError("blocked", permanent=True, unreachable_user=True)
    )

    _drain(migrated_db, channel, a)
    assert len(channel.attempts) == 1  # the second reply is not even tried
    assert _statuses(migrated_db) == ["failed", "failed"]
    with migrated_db.session() as s:
        user = s.scalars(
            select(m.PlatformUser).where(m.PlatformUser.platform_user_id == "42")
        ).one()
        assert user.unreachable


def test_restart_turns_in_flight_rows_unknown(migrated_db: Database) -> None:
    a = _enqueue(migrated_db, "A", ["a1", "a2"])
    with migrated_db.session() as s:
        claimed = outbox_store.claim_next(s, a)  # a "crash" right after claiming
    assert isinstance(claimed, outbox_store.OutboxJob)
    channel = RecordingChannel()

    async def go() -> None:
        outbox = Outbox(migrated_db, {"acct": channel}, FAST)
        assert outbox.recover() == [claimed.id]
        await outbox.sweep()
        await outbox.idle()
        await outbox.close()

    asyncio.run(go())
    assert [s.message.text for s in channel.sent] == ["a2"]
    assert _statuses(migrated_db) == ["unknown", "sent"]
