"""Logs at INFO and above never carry what users or the model wrote: a message with a unique
marker goes through the pipeline (the tiny model is scripted to repeat it, so its draft falls
back and the fallback is logged) and no record at INFO or above holds the marker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
import torch

from bot.config import Settings
from bot.domain import Decision, DecisionAction, Incoming, Mode, ReplyStyle
from bot.nlp.generate import ReplyGenerator
from bot.nlp.models import ModelHost
from bot.outbox import Outbox
from bot.pipeline import Pipeline
from bot.service import build_analysis
from bot.storage.db import Database
from tests.fakes import RecordingChannel, account

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

MARKER = "zqxjmarker"
# Greedy and unpenalised, so the scripted tokens come out as scripted; no sentence end within
# the cap, so the clean-up leaves nothing and the fallback stands in.
STYLE = ReplyStyle(
    max_new_tokens=24, do_sample=False, repetition_penalty=1.0, no_repeat_ngram_size=0
)


@pytest.fixture
def scripted_host(tiny_host: ModelHost) -> Iterator[ModelHost]:
    """The tiny model made to write " Hi <marker> <marker> ..." (a hook on the LM head)."""
    script = list(tiny_host.tokenizer.encode(f" Hi {MARKER}", add_special_tokens=False))
    step = 0

    def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        nonlocal step
        forced = torch.full_like(output, -1e4)
        forced[..., script[min(step, len(script) - 1)]] = 1e4
        step += 1
        return forced

    head = tiny_host.model.get_output_embeddings()
    assert isinstance(head, torch.nn.Module)
    handle = head.register_forward_hook(hook)
    yield tiny_host
    handle.remove()


def _rendered(records: Sequence[logging.LogRecord]) -> list[str]:
    """Each record as a handler would write it, traceback included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(record) for record in records]


def test_no_message_body_or_model_output_is_logged_at_info_or_above(
    migrated_db: Database, scripted_host: ModelHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    classifier, gate = build_analysis(Settings(database_url=migrated_db.url))
    channel = RecordingChannel()
    outbox = Outbox(migrated_db, {channel.account: channel})
    generator = ReplyGenerator(scripted_host, STYLE)
    pipeline = Pipeline(
        db=migrated_db,
        classifier=classifier,
        gate=gate,
        drafter=generator,
        outbox=outbox,
        accounts={"acct": replace(account(mode=Mode.AUTO), style=STYLE)},
        history_turns=6,
    )
    incoming = Incoming(
        platform="console",
        account="acct",
        chat_id="c1",
        message_id="1",
        user_id="u1",
        text=f"{MARKER} where is my parcel?",
    )

    async def go() -> Decision:
        decision = await pipeline.handle(incoming)
        await outbox.idle()
        return decision

    try:
        decision = asyncio.run(go())
    finally:
        generator.close()

    # Sent or queued (the gate's call), the model's draft fell back: both log lines ran.
    assert decision.action is not DecisionAction.IGNORE
    assert decision.reply_text == STYLE.fallback_reply
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert any(r.name == "bot.nlp.generate" and "fallback" in r.getMessage() for r in loud)
    assert any("fallback" in r.getMessage() for r in loud if r.name == "bot.pipeline")
    assert not [line for line in _rendered(loud) if MARKER in line]
    # The model's output is still there for whoever turns on DEBUG: the test can see it.
    quiet = [r for r in caplog.records if r.levelno < logging.INFO]
    assert any(MARKER in line for line in _rendered(quiet))
