"""Promote and rollback reach a running pipeline through the registry, with no message lost:
real model host (tiny GPT-2), batcher, pipeline and storage on both backends."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from bot.adapter_sync import AdapterSync
from bot.config import Settings
from bot.domain import Incoming, Mode
from bot.nlp.batching import MicroBatcher
from bot.nlp.generate import ReplyGenerator
from bot.nlp.models import ModelHost
from bot.pipeline import Pipeline
from bot.service import build_analysis
from bot.storage import accounts as account_store
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import account
from training import registry

GREEDY = {"do_sample": False, "max_new_tokens": 6}


def _register(db: Database, root: Path, weights: Path) -> str:
    slot = registry.reserve(db, root, "acct", "reply")
    shutil.copytree(weights, slot.path, dirs_exist_ok=True)
    return registry.register(
        db, slot, base_model="tiny", data_hash=None, config={}, metrics={}
    ).name


def _message(n: int) -> Incoming:
    return Incoming(
        platform="console",
        account="acct",
        chat_id=f"chat-{n}",
        message_id=str(n),
        user_id=f"user-{n}",
        text=f"hello number {n}",
    )


def _adapters_by_message(db: Database) -> dict[str, str | None]:
    with db.session() as s:
        rows = s.execute(
            select(m.Message.platform_message_id, m.ReplyDraft.adapter).join(
                m.ReplyDraft, m.ReplyDraft.message_id == m.Message.id
            )
        )
        return {str(message): adapter for message, adapter in rows}


def test_promote_and_rollback_switch_drafts_without_losing_a_message(
    migrated_db: Database,
    tiny_model_dir: Path,
    tiny_lora_dir: Path,
    tiny_lora_dir_b: Path,
    tmp_path: Path,
) -> None:
    db = migrated_db
    acct = account(mode=Mode.REVIEW_ALL)
    acct = replace(acct, style=replace(acct.style, **GREEDY))  # type: ignore[arg-type]
    with db.session() as s:
        account_store.bind(s, "acct", "console", "acct")
    first = _register(db, tmp_path, tiny_lora_dir)
    second = _register(db, tmp_path, tiny_lora_dir_b)
    op = registry.operator()
    host = ModelHost.load(str(tiny_model_dir), device="cpu")
    classifier, gate = build_analysis(Settings(database_url=db.url))

    async def scenario() -> list[str | None]:
        with ReplyGenerator(host, acct.style) as generator:
            batcher = MicroBatcher(generator, window_s=0.001, max_batch=4)
            pipeline = Pipeline(
                db=db,
                classifier=classifier,
                gate=gate,
                drafter=batcher,
                outbox=None,
                accounts={"acct": acct},
                history_turns=2,
            )
            sync = AdapterSync(db, pipeline, [acct], host=host, load_classifier=None)
            await sync.poll()  # nothing active yet: the base model
            seen: list[str | None] = [pipeline._adapters.get("acct")]
            steps = [
                lambda: registry.promote(db, first, op),
                lambda: registry.promote(db, second, op),
                lambda: registry.rollback(db, "acct", "reply", op),
                lambda: registry.rollback(db, "acct", "reply", op),
            ]
            n = 0
            in_flight: list[asyncio.Task[object]] = []
            for step in steps:
                # Messages keep arriving while the registry changes and the service follows.
                in_flight += [
                    asyncio.create_task(pipeline.handle(_message(n + i))) for i in range(6)
                ]
                n += 6
                await asyncio.to_thread(step)
                await sync.poll()
                seen.append(pipeline._adapters.get("acct"))
            await asyncio.gather(*in_flight)
            await batcher.aclose()
            assert sync.stats.failures == 0
            return seen

    seen = asyncio.run(scenario())

    assert seen == ["__base__", first, second, first, "__base__"]
    adapters = _adapters_by_message(db)
    assert len(adapters) == 24  # every message drafted, none lost across four switches
    assert set(adapters.values()) <= {None, first, second}


def test_a_broken_adapter_keeps_the_old_one_and_says_why(
    migrated_db: Database, tiny_model_dir: Path, tiny_lora_dir: Path, tmp_path: Path
) -> None:
    db = migrated_db
    acct = account(mode=Mode.REVIEW_ALL)
    with db.session() as s:
        account_store.bind(s, "acct", "console", "acct")
    good = _register(db, tmp_path, tiny_lora_dir)
    broken = _register(db, tmp_path, tiny_lora_dir)
    (tmp_path / "acct" / "reply" / "v2" / "adapter_model.safetensors").write_bytes(b"junk")
    op = registry.operator()
    host = ModelHost.load(str(tiny_model_dir), device="cpu")

    class Recorder:
        def __init__(self) -> None:
            self.adapters: dict[str, str] = {}

        def set_adapter(self, account: str, adapter: str) -> None:
            self.adapters[account] = adapter

        def set_classifier(self, account: str, classifier: object) -> None:
            raise AssertionError("no heads in this test")

    pipeline = Recorder()
    sync = AdapterSync(db, pipeline, [acct], host=host, load_classifier=None)
    registry.promote(db, good, op)
    asyncio.run(sync.poll())
    registry.promote(db, broken, op)
    asyncio.run(sync.poll())

    assert pipeline.adapters == {"acct": good}
    assert sync.stats.failures == 1 and "rollback" not in (sync.stats.last_error or "")
    assert broken in (sync.stats.last_error or "")


def test_a_pinned_account_is_never_switched(
    migrated_db: Database, tiny_lora_dir: Path, tmp_path: Path
) -> None:
    db = migrated_db
    pinned = replace(account(mode=Mode.REVIEW_ALL), adapter=str(tiny_lora_dir))
    with db.session() as s:
        account_store.bind(s, "acct", "console", "acct")
    registry.promote(db, _register(db, tmp_path, tiny_lora_dir), registry.operator())

    class Refuses:
        def set_adapter(self, account: str, adapter: str) -> None:
            raise AssertionError("a pinned adapter wins over the registry")

        def set_classifier(self, account: str, classifier: object) -> None:
            raise AssertionError("no heads here")

    sync = AdapterSync(db, Refuses(), [pinned], host=None, load_classifier=None)
    asyncio.run(sync.poll())
    assert sync.stats.failures == 0
