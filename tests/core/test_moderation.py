"""The moderation service on both backends: actors, one audit trail, blocked drafts."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from bot.domain import (
    Actor,
    ActorKind,
    Draft,
    DraftStatus,
    Incoming,
    Verdict,
    VerdictAction,
)
from bot.errors import InputError, InvalidStateError, NotFoundError, PermissionDeniedError
from bot.moderation import ModerationService
from bot.safety.context import NO_CONTEXT, CheckContext
from bot.storage import drafts as draft_store
from bot.storage import history
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import OPERATOR, AllowAll

SHOP_MOD = Actor(ActorKind.TELEGRAM, "11", "@shopmod (11)", accounts=frozenset({"shop"}))
BANK_MOD = Actor(ActorKind.TELEGRAM, "21", "@bankmod (21)", accounts=frozenset({"bank"}))
NOBODY = Actor(ActorKind.TELEGRAM, "66", "@mallory (66)", accounts=frozenset())


class BlockWord:
    """A gate that blocks any text containing "idiot" (what the real gate does, by score)."""

    def check_draft(self, text: str, context: CheckContext = NO_CONTEXT) -> Verdict:
        if "idiot" in text:
            return Verdict(VerdictAction.BLOCK, 0.99, ("toxic",))
        return Verdict(VerdictAction.ALLOW, 0.01)


def _queue(db: Database, account: str, text: str, *, blocked: bool = False, n: int = 1) -> int:
    with db.session() as s:
        stored = history.ingest(
            s,
            Incoming(
                platform="telegram",
                account=account,
                chat_id="500",
                message_id=f"{account}-{n}",
                user_id="9",
                text=f"question {n}",
            ),
        )
        verdict = (
            Verdict(VerdictAction.BLOCK, 0.99, ("toxic",))
            if blocked
            else Verdict(VerdictAction.ALLOW, 0.0)
        )
        return draft_store.create_draft(
            s,
            message_id=stored.message_id,
            draft=Draft(text=text, raw=text, fallback_used=False, model="canned"),
            verdict=verdict,
            status=m.DraftStatus.QUEUED,
        )


def _audit(db: Database) -> list[tuple[str, str, str | None, str | None, str | None]]:
    with db.session() as s:
        rows = s.execute(
            select(
                m.Account.name,
                m.ModerationAction.action,
                m.ModerationAction.moderator,
                m.ModerationAction.target_kind,
                m.ModerationAction.note,
            )
            .join(m.Account, m.ModerationAction.account_id == m.Account.id)
            .order_by(m.ModerationAction.id)
        ).all()
    return [(a, k.value, who, target, note) for a, k, who, target, note in rows]


@pytest.fixture
def service(migrated_db: Database) -> ModerationService:
    woken: list[int] = []

    def wake(conversation_id: int) -> bool:
        woken.append(conversation_id)
        return False

    svc = ModerationService(migrated_db, gate=BlockWord, wake=wake)
    svc.woken = woken  # type: ignore[attr-defined]
    return svc


def test_moderators_act_only_on_their_account_and_refusals_are_audited(
    migrated_db: Database, service: ModerationService
) -> None:
    shop_draft = _queue(migrated_db, "shop", "Sorry about that!")
    bank_draft = _queue(migrated_db, "bank", "We will check.")

    with pytest.raises(PermissionDeniedError, match="may not approve drafts of account 'bank'"):
        service.approve(SHOP_MOD, bank_draft)
    with pytest.raises(PermissionDeniedError):
        service.reject(NOBODY, shop_draft)
    # Each moderator sees only their account's queue; the operator sees both.
    assert [i.draft_id for i in service.list_queue(SHOP_MOD)] == [shop_draft]
    assert [i.draft_id for i in service.list_queue(OPERATOR)] == [shop_draft, bank_draft]
    assert [i.draft_id for i in service.list_queue(OPERATOR, account="bank")] == [bank_draft]
    with pytest.raises(PermissionDeniedError):
        service.list_queue(SHOP_MOD, account="bank")
    with pytest.raises(NotFoundError):
        service.show(SHOP_MOD, bank_draft)  # another account's draft is not shown

    outcome = service.approve(BANK_MOD, bank_draft)
    assert outcome.status == "approved" and outcome.outbox_id is not None
    assert service.woken == [outcome.conversation_id]  # type: ignore[attr-defined]
    assert _audit(migrated_db) == [
        ("bank", "refused", "@shopmod (11)", "draft", "approve: not a moderator of this account"),
        ("shop", "refused", "@mallory (66)", "draft", "reject: not a moderator of this account"),
        (
            "bank",
            "refused",
            "@shopmod (11)",
            "account",
            "list the queue: not a moderator of this account",
        ),
        ("bank", "refused", "@shopmod (11)", "draft", "show: not a moderator of this account"),
        ("bank", "approve", "@bankmod (21)", "draft", None),
    ]


def test_an_override_reason_on_an_unblocked_draft_is_kept(
    migrated_db: Database, service: ModerationService
) -> None:
    draft = _queue(migrated_db, "shop", "Thanks!")
    service.approve(SHOP_MOD, draft, override="double-checked the order")
    assert _audit(migrated_db) == [
        ("shop", "approve", "@shopmod (11)", "draft", "double-checked the order")
    ]


def test_a_draft_is_acted_on_once(migrated_db: Database, service: ModerationService) -> None:
    draft = _queue(migrated_db, "shop", "Thanks!")
    service.reject(SHOP_MOD, draft, reason="off-topic")
    with pytest.raises(InvalidStateError, match="already rejected"):
        service.approve(OPERATOR, draft)
    with pytest.raises(NotFoundError, match="no draft #999"):
        service.approve(OPERATOR, 999)
    with pytest.raises(InputError, match="empty"):
        service.edit(OPERATOR, draft, "   ")


def test_a_blocked_draft_needs_an_edit_or_an_audited_override(
    migrated_db: Database, service: ModerationService
) -> None:
    draft = _queue(migrated_db, "shop", "you idiot", blocked=True)
    with pytest.raises(InvalidStateError, match=r"blocked by the safety gate.*--override"):
        service.approve(SHOP_MOD, draft)
    # An edit goes through the gate again: a blocked text is refused, nothing changes.
    with pytest.raises(InvalidStateError, match=r"edited text .* is blocked"):
        service.edit(SHOP_MOD, draft, "still an idiot")
    with pytest.raises(InputError, match="needs a reason"):
        service.approve(SHOP_MOD, draft, override="  ")
    (item,) = service.list_queue(OPERATOR)
    assert item.status is DraftStatus.QUEUED and item.blocked

    outcome = service.approve(SHOP_MOD, draft, override="quoting the customer, agreed with legal")
    assert outcome.status == "approved" and outcome.outbox_id is not None
    assert _audit(migrated_db)[-1] == (
        "shop",
        "override",
        "@shopmod (11)",
        "draft",
        "quoting the customer, agreed with legal",
    )
    refusals = [note for _, kind, _, _, note in _audit(migrated_db) if kind == "refused"]
    assert refusals == [
        "approve: blocked draft, no override",
        "edit: new text blocked (toxic)",
    ]


def test_an_edit_of_a_blocked_draft_is_checked_and_sent(
    migrated_db: Database, service: ModerationService
) -> None:
    draft = _queue(migrated_db, "shop", "you idiot", blocked=True)
    outcome = service.edit(SHOP_MOD, draft, "Sorry for the trouble, we are on it.")
    assert outcome.status == "edited" and outcome.outbox_id is not None
    item, trail = service.show(OPERATOR, draft)
    assert item.verdict == "allow" and item.draft_text == "Sorry for the trouble, we are on it."
    assert [e.action for e in trail] == ["edit"]


def test_pause_and_resume_are_checked_and_audited(
    migrated_db: Database, service: ModerationService
) -> None:
    _queue(migrated_db, "shop", "hi")
    with pytest.raises(PermissionDeniedError):
        service.pause(BANK_MOD, "shop")
    assert service.pause(SHOP_MOD, "shop").message == "Auto-replies paused for the whole account."
    assert service.pause(SHOP_MOD, "shop", chat_id="500").message.endswith("in this chat.")
    with pytest.raises(NotFoundError, match="no chat '404'"):
        service.resume(SHOP_MOD, "shop", chat_id="404")
    service.resume(OPERATOR, "shop")
    with migrated_db.session() as s:
        account = s.scalars(select(m.Account).where(m.Account.name == "shop")).one()
        assert account.paused is False
    assert [(a, k, target) for a, k, _, target, _ in _audit(migrated_db)] == [
        ("shop", "refused", "account"),
        ("shop", "pause", "account"),
        ("shop", "pause", "chat"),
        ("shop", "resume", "account"),
    ]
    assert [e.action for e in service.audit_log(SHOP_MOD)] == [
        "refused",
        "pause",
        "pause",
        "resume",
    ]
    assert service.audit_log(BANK_MOD) == []


def test_audit_rows_outlive_their_draft(migrated_db: Database) -> None:
    service = ModerationService(migrated_db, gate=AllowAll)
    draft = _queue(migrated_db, "shop", "Thanks!")
    service.approve(OPERATOR, draft)
    with migrated_db.session() as s:
        s.execute(delete(m.OutboxItem))
        s.execute(delete(m.ReplyDraft).where(m.ReplyDraft.id == draft))
    with migrated_db.session() as s:
        (row,) = s.scalars(select(m.ModerationAction)).all()
        assert row.draft_id is None and row.target == str(draft)
