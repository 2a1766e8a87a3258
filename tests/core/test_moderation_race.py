"""Two moderators acting on one draft at the same moment, on both backends: exactly one wins,
the other is told; and stale drafts expire, audited."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import select, update

from bot.domain import Actor, ActorKind, DraftStatus, utcnow
from bot.errors import InvalidStateError
from bot.jobs import expire_drafts
from bot.moderation import ModerationService
from bot.policy_actions import POLICY
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import AllowAll, queue_draft

ALICE = Actor(ActorKind.TELEGRAM, "1", "alice", accounts=frozenset({"shop"}))
BOB = Actor(ActorKind.CLI, "2", "bob", accounts=frozenset({"shop"}))


def _race(service: ModerationService, draft_id: int) -> dict[str, object]:
    """Alice approves and Bob edits the same draft, released at the same instant."""
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def act(actor: Actor) -> None:
        start.wait()
        try:
            if actor is ALICE:
                results["alice"] = service.approve(actor, draft_id).status
            else:
                results["bob"] = service.edit(actor, draft_id, "Shipped this morning.").status
        except InvalidStateError as exc:
            results[actor.display] = exc

    threads = [threading.Thread(target=act, args=(actor,)) for actor in (ALICE, BOB)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_moderators_at_once_one_wins_and_the_other_is_told(migrated_db: Database) -> None:
    service = ModerationService(migrated_db, gate=AllowAll)
    for round_ in range(3):  # a few rounds, so the race really is run both ways
        _, draft_id = queue_draft(migrated_db, account="shop", chat_id=f"c{round_}")
        results = _race(service, draft_id)
        winners = [r for r in results.values() if isinstance(r, str)]
        losers = [r for r in results.values() if isinstance(r, InvalidStateError)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert "someone else" in str(losers[0]) or "already" in str(losers[0])
        with migrated_db.session() as s:
            status = s.get_one(m.ReplyDraft, draft_id).status
            replies = s.scalars(select(m.OutboxItem.id).where(m.OutboxItem.draft_id == draft_id))
            assert len(list(replies)) == 1  # one reply queued, never two
            audited = s.scalars(
                select(m.ModerationAction.action).where(m.ModerationAction.draft_id == draft_id)
            ).all()
        assert status.value == winners[0]
        assert len(audited) == 1


def test_stale_drafts_expire_and_are_audited(migrated_db: Database) -> None:
    service = ModerationService(migrated_db, gate=AllowAll)
    _, old = queue_draft(migrated_db, account="shop", chat_id="c1")
    _, fresh = queue_draft(migrated_db, account="shop", chat_id="c2")
    with migrated_db.session() as s:
        s.execute(
            update(m.ReplyDraft)
            .where(m.ReplyDraft.id == old)
            .values(created_at=utcnow() - timedelta(hours=50))
        )

    # As the scheduled job runs it (bot/jobs.py).
    assert (
        asyncio.run(expire_drafts(partial(service.expire_stale, POLICY), timedelta(hours=48))) == 1
    )
    assert service.expire_stale(POLICY, timedelta(hours=48)) == 0  # once only
    with migrated_db.session() as s:
        assert s.get_one(m.ReplyDraft, old).status is DraftStatus.EXPIRED
        assert s.get_one(m.ReplyDraft, fresh).status is DraftStatus.QUEUED
        rows = s.execute(
            select(m.ModerationAction.action, m.ModerationAction.moderator).where(
                m.ModerationAction.draft_id == old
            )
        ).all()
    assert [(a.value, who) for a, who in rows] == [("expire", "policy")]
    with pytest.raises(InvalidStateError, match="already expired"):
        service.approve(ALICE, old)
