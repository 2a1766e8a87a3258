"""Label corrections through the moderation service, on both backends: label rows, one audit
row, refusals for other accounts' moderators and for labels the account does not have."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.domain import Actor, ActorKind
from bot.errors import InputError, NotFoundError, PermissionDeniedError
from bot.moderation import ModerationService
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import OPERATOR, AllowAll, queue_draft

SHOP_MOD = Actor(ActorKind.TELEGRAM, "11", "@shopmod (11)", accounts=frozenset({"shop"}))
BANK_MOD = Actor(ActorKind.TELEGRAM, "21", "@bankmod (21)", accounts=frozenset({"bank"}))
SHOP_INTENTS = ("refund", "delivery", "other")


@pytest.fixture
def service(migrated_db: Database) -> ModerationService:
    return ModerationService(migrated_db, gate=AllowAll, intent_labels={"shop": SHOP_INTENTS})


def _labels(db: Database) -> list[tuple[int | None, str, str, str, str]]:
    with db.session() as s:
        rows = s.execute(
            select(
                m.LabelExample.message_id,
                m.LabelExample.task,
                m.LabelExample.text,
                m.LabelExample.label,
                m.LabelExample.source,
            ).order_by(m.LabelExample.task)
        )
        return [(a, b, c, d, e) for a, b, c, d, e in rows]


def _audit(db: Database) -> list[tuple[str, str, str | None]]:
    with db.session() as s:
        rows = s.execute(
            select(
                m.ModerationAction.action, m.ModerationAction.moderator, m.ModerationAction.note
            ).order_by(m.ModerationAction.id)
        )
        return [(action.value, who, note) for action, who, note in rows]


def test_a_correction_writes_label_rows_and_one_audit_row(
    migrated_db: Database, service: ModerationService
) -> None:
    message_id, draft_id = queue_draft(migrated_db, "I want my money back!")

    outcome = service.relabel(SHOP_MOD, draft_id, intent="Refund", sentiment="negative")

    assert outcome.status == "relabelled" and "intent=refund sentiment=negative" in outcome.message
    source = "moderator:@shopmod (11)"
    assert _labels(migrated_db) == [
        (message_id, "intent", "I want my money back!", "refund", source),
        (message_id, "sentiment", "I want my money back!", "negative", source),
    ]
    assert _audit(migrated_db) == [("relabel", "@shopmod (11)", "intent=refund sentiment=negative")]
    # A later correction replaces the earlier one (one row per message and task).
    service.relabel(OPERATOR, draft_id, intent="delivery")
    assert [row[3] for row in _labels(migrated_db)] == ["delivery", "negative"]
    assert _audit(migrated_db)[-1] == ("relabel", "cli:tester", "intent=delivery")
    # The draft itself is untouched: still queued, still answerable.
    item, trail = service.show(OPERATOR, draft_id)
    assert item.status.value == "queued" and [e.action for e in trail] == ["relabel", "relabel"]


def test_another_accounts_moderator_is_refused_and_audited(
    migrated_db: Database, service: ModerationService
) -> None:
    _, draft_id = queue_draft(migrated_db, "late again")
    with pytest.raises(PermissionDeniedError, match="may not relabel messages of account 'shop'"):
        service.relabel(BANK_MOD, draft_id, sentiment="negative")
    assert _labels(migrated_db) == []
    assert _audit(migrated_db) == [
        ("refused", "@bankmod (21)", "relabel: not a moderator of this account")
    ]


def test_labels_the_account_does_not_have_are_refused_with_the_valid_ones(
    migrated_db: Database, service: ModerationService
) -> None:
    _, draft_id = queue_draft(migrated_db, "where is it")
    # "complaint" is a default intent, but not one of this account's.
    with pytest.raises(InputError, match=r"'complaint' is not a valid intent label for account "):
        service.relabel(SHOP_MOD, draft_id, intent="complaint", sentiment="negative")
    with pytest.raises(InputError, match="use one of: negative, neutral, positive"):
        service.relabel(SHOP_MOD, draft_id, sentiment="angry")
    with pytest.raises(InputError, match="--intent LABEL and/or --sentiment LABEL"):
        service.relabel(SHOP_MOD, draft_id)
    with pytest.raises(NotFoundError, match="no draft #999"):
        service.relabel(SHOP_MOD, 999, intent="refund")
    assert _labels(migrated_db) == []  # nothing half-written: the sentiment was valid
    assert _audit(migrated_db) == []


def test_an_account_without_configured_labels_uses_the_default_ones(
    migrated_db: Database,
) -> None:
    service = ModerationService(migrated_db, gate=AllowAll)
    _, draft_id = queue_draft(migrated_db, "this is awful", account="bank")
    service.relabel(BANK_MOD, draft_id, intent="complaint")
    assert [row[3] for row in _labels(migrated_db)] == ["complaint"]
