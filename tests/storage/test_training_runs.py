"""Training runs on both backends: a run ends once; stale runs of a dead runner are aborted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.domain import utcnow
from bot.storage import accounts as account_store
from bot.storage import adapters as adapter_store
from bot.storage import leases
from bot.storage import training_runs as runs
from bot.storage.db import Database


def _account(db: Database, name: str = "shop") -> None:
    with db.session() as s:
        account_store.bind(s, name, "console", name)


def test_a_run_ends_exactly_once(migrated_db: Database, tmp_path: Path) -> None:
    _account(migrated_db)
    with migrated_db.session() as s:
        adapter_store.register(
            s,
            account="shop",
            kind="reply",
            version=1,
            path=tmp_path,
            base_model="gpt2",
            data_hash="h",
            config={},
            metrics={},
        )
        run_id = runs.start(s, account="shop", kind="reply", params={"trigger": "test"})
        runs.add_params(s, run_id, examples=12)
    with migrated_db.session() as s:
        assert runs.get(s, run_id).status == "running"
        assert runs.succeed(s, run_id, metrics={"promoted": True}, adapter="shop-reply-v1")
        # Whoever comes second changes nothing: the child's result stands.
        assert runs.abort(s, run_id, "service stopped") is False
        assert runs.fail(s, run_id, error="late") is False
    with migrated_db.session() as s:
        run = runs.get(s, run_id)
    assert (run.status, run.adapter, run.account, run.error) == (
        "succeeded",
        "shop-reply-v1",
        "shop",
        None,
    )
    assert run.params == {"trigger": "test", "examples": 12}
    assert run.finished_at is not None and run.started_at is not None


def test_recent_and_last_trained_skip_nights_without_training(migrated_db: Database) -> None:
    _account(migrated_db)
    with migrated_db.session() as s:
        trained = runs.start(s, account="shop", kind="reply", params={"last_draft_id": 7})
        runs.succeed(s, trained, metrics={"promoted": False})
        skipped = runs.start(s, account="shop", kind="reply", params={})
        runs.succeed(s, skipped, metrics={runs.SKIPPED: "3 new examples"})
        failed = runs.start(s, account="shop", kind="reply", params={})
        runs.fail(s, failed, error="x" * 10_000)
    with migrated_db.session() as s:
        assert [r.id for r in runs.recent(s, account="shop")] == [failed, skipped, trained]
        assert runs.get(s, skipped).skipped
        last = runs.last_trained(s, "shop", "reply")
        assert last is not None and last.id == trained and last.params["last_draft_id"] == 7
        assert len(runs.get(s, failed).error or "") == runs.ERROR_CHARS


def test_abort_stale_ends_runs_whose_lease_is_gone(migrated_db: Database) -> None:
    _account(migrated_db)
    now = utcnow()
    with migrated_db.session() as s:
        dead = runs.start(
            s, account="shop", kind="reply", params={"lease": "retrain", "holder": "dead"}
        )
        manual = runs.start(s, account="shop", kind="reply", params={})  # no lease: untouched
        assert leases.acquire(s, "retrain", "dead", 10.0, now=now - timedelta(minutes=1))
    with migrated_db.session() as s:
        assert runs.abort_stale(s, "retrain") == [dead]
        assert runs.get(s, dead).status == "aborted"
        assert "lease lapsed" in (runs.get(s, dead).error or "")
        assert runs.get(s, manual).status == "running"


def test_abort_stale_spares_the_live_holders_run(migrated_db: Database) -> None:
    _account(migrated_db)
    with migrated_db.session() as s:
        live = runs.start(
            s, account="shop", kind="reply", params={"lease": "retrain", "holder": "me"}
        )
        assert leases.acquire(s, "retrain", "me", 60.0)
    with migrated_db.session() as s:
        assert runs.abort_stale(s, "retrain") == []
        assert runs.get(s, live).status == "running"
