"""The adapter registry on both backends: versions, promote, rollback, audit, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain import Actor, ActorKind, ActorRole
from bot.errors import PermissionDeniedError
from bot.storage import accounts as account_store
from bot.storage import adapters as adapter_store
from bot.storage import drafts as draft_store
from bot.storage.db import Database
from training import registry


@pytest.fixture
def db(migrated_db: Database) -> Database:
    with migrated_db.session() as s:
        account_store.bind(s, "acme", "console", "acme")
        account_store.bind(s, "zeta", "console", "zeta")
    return migrated_db


def _trained(db: Database, root: Path, account: str = "acme", kind: str = "reply") -> str:
    slot = registry.reserve(db, root, account, kind)
    (slot.path / "adapter_config.json").write_text("{}", encoding="utf-8")
    version = registry.register(
        db,
        slot,
        base_model="tiny",
        data_hash="abc123",
        config={"r": 8},
        metrics={"perplexity": 10.0 + slot.version},
    )
    return version.name


def test_versions_count_per_account_and_kind_and_metadata_is_written(
    db: Database, tmp_path: Path
) -> None:
    first = _trained(db, tmp_path)
    second = _trained(db, tmp_path)
    other = _trained(db, tmp_path, "zeta")
    head = _trained(db, tmp_path, "acme", "sentiment")

    assert (first, second, other, head) == (
        "acme-reply-v1",
        "acme-reply-v2",
        "zeta-reply-v1",
        "acme-sentiment-v1",
    )
    meta = registry.read_metadata(tmp_path / "acme" / "reply" / "v2")
    assert meta["base_model"] == "tiny" and meta["data_hash"] == "abc123"
    assert [v.name for v in registry.versions(db, "acme", "reply")] == [second, first]
    assert all(v.status == "candidate" for v in registry.versions(db))


def test_a_left_over_directory_is_skipped_not_overwritten(db: Database, tmp_path: Path) -> None:
    (tmp_path / "acme" / "reply" / "v1").mkdir(parents=True)  # a crashed run's leftovers
    slot = registry.reserve(db, tmp_path, "acme", "reply")
    assert slot.version == 2 and slot.path.is_dir()


def test_promote_retires_the_previous_and_rollback_restores_it(
    db: Database, tmp_path: Path
) -> None:
    v1, v2 = _trained(db, tmp_path), _trained(db, tmp_path)
    op = registry.operator("olga")

    registry.promote(db, v1, op)
    registry.promote(db, v2, op, note="better perplexity")
    with db.session() as s:
        assert adapter_store.active_names(s)[("acme", "reply")][0] == v2
    assert registry.get(db, v1).status == "retired"

    restored = registry.rollback(db, "acme", "reply", op)

    assert restored is not None and restored.name == v1
    assert registry.get(db, v2).status == "rejected"  # a second rollback will not bring it back
    assert registry.rollback(db, "acme", "reply", op) is None  # back to the base model
    with db.session() as s:
        assert ("acme", "reply") not in adapter_store.active_names(s)
        trail = draft_store.audit_trail(s, accounts=("acme",))
    kinds = [(str(row.action), (row.target or "").split()[-1]) for row in trail]
    assert ("promote", v2) in kinds and ("rollback", v2) in kinds and ("rollback", v1) in kinds


def test_refusals_say_what_to_do(db: Database, tmp_path: Path) -> None:
    v1 = _trained(db, tmp_path)
    op = registry.operator()
    moderator = Actor(ActorKind.TELEGRAM, "7", "mo", ActorRole.MODERATOR)
    zeta_operator = Actor(ActorKind.CLI, "z", "z", ActorRole.OPERATOR, frozenset({"zeta"}))

    with pytest.raises(PermissionDeniedError, match="operators"):
        registry.promote(db, v1, moderator)
    with pytest.raises(PermissionDeniedError):
        registry.promote(db, v1, zeta_operator)
    with pytest.raises(registry.RegistryError, match="adapters list"):
        registry.promote(db, "nope", op)
    with pytest.raises(registry.RegistryError, match="no active reply adapter"):
        registry.rollback(db, "acme", "reply", op)
    with pytest.raises(registry.RegistryError, match="unknown adapter kind"):
        registry.active(db, "acme", "tone")
    registry.promote(db, v1, op)
    with pytest.raises(registry.RegistryError, match="already the active"):
        registry.promote(db, v1, op)
    with pytest.raises(registry.RegistryError, match="roll it back"):
        registry.reject(db, v1, "worse")


def test_a_missing_directory_is_never_promoted(db: Database, tmp_path: Path) -> None:
    v1 = _trained(db, tmp_path)
    (tmp_path / "acme" / "reply" / "v1" / "adapter_config.json").unlink()
    (tmp_path / "acme" / "reply" / "v1" / "autoreply.json").unlink()
    (tmp_path / "acme" / "reply" / "v1").rmdir()
    with pytest.raises(registry.RegistryError, match="missing"):
        registry.promote(db, v1, registry.operator())
    assert registry.active(db, "acme", "reply") is None


def test_metrics_merge_into_the_row_and_the_metadata(db: Database, tmp_path: Path) -> None:
    v1 = _trained(db, tmp_path)
    registry.record_metrics(db, v1, {"fallback_rate": 0.1})
    assert registry.get(db, v1).metrics == {"perplexity": 11.0, "fallback_rate": 0.1}
    meta = registry.read_metadata(tmp_path / "acme" / "reply" / "v1")
    assert meta["metrics"]["fallback_rate"] == 0.1


def test_the_stored_eval_verdict_says_whether_a_promotion_needs_force(
    db: Database, tmp_path: Path
) -> None:
    kept, passed, never = _trained(db, tmp_path), _trained(db, tmp_path), _trained(db, tmp_path)
    registry.record_metrics(db, kept, {"eval": {"promote": False, "reason": "worse perplexity"}})
    registry.record_metrics(db, passed, {"eval": {"promote": True, "reason": "better"}})
    assert registry.gate_refusal(registry.get(db, kept)) == "worse perplexity"
    assert registry.gate_refusal(registry.get(db, passed)) is None
    assert registry.gate_refusal(registry.get(db, never)) is None
