"""Classifier heads for tests, saved exactly as `autoreply train classifier` saves them.

Made on the tiny offline GPT-2 (tests/fixtures/models.py) without training: either with a zero
`score` layer (every label equally likely, so the first label wins: a predictable answer that
differs from the lexical rules), or with random LoRA and score weights (to check that serving
computes what training computed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from bot.storage.db import Database
from training import registry
from training.train_classifier import HeadConfig, TrainedHead, build_model, save_head


def make_head(
    base_dir: Path,
    out: Path,
    task: str,
    labels: Sequence[str],
    *,
    seed: int | None = None,
    temperature: float = 1.0,
    lora_layers: int = 8,
) -> Path:
    """Save a head in `out`. seed None: zero score layer; else random LoRA and score weights."""
    config = HeadConfig(task=task, lora_layers=lora_layers)
    model, tokenizer = build_model(str(base_dir), labels, config, device="cpu")
    generator = torch.Generator().manual_seed(seed or 0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "score" in name:
                param.zero_() if seed is None else param.normal_(0, 0.5, generator=generator)
            elif "lora_" in name and seed is not None:
                param.normal_(0, 0.2, generator=generator)
    head = TrainedHead(model, tokenizer, tuple(labels), temperature)
    return save_head(head, out, base_model=str(base_dir), config=config)


def promote_head(
    db: Database,
    adapters_dir: Path,
    account: str,
    task: str,
    base_dir: Path,
    labels: Sequence[str],
    *,
    seed: int | None = None,
) -> str:
    """Make, register and promote a head for (account, task); returns its registry name."""
    slot = registry.reserve(db, adapters_dir, account, task)
    make_head(base_dir, slot.path, task, labels, seed=seed)
    version = registry.register(
        db, slot, base_model=str(base_dir), data_hash=None, config={}, metrics={}
    )
    registry.promote(db, version.name, registry.operator())
    return version.name
