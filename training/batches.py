"""Batches for causal-LM training: which examples go together, and how they become tensors.

Each epoch's order comes from (seed, epoch) alone, so a resumed run sees the same batches as
an uninterrupted one. Examples are grouped by length (shuffled, sorted within pools of 50
batches, batches shuffled), which keeps padding small. Two layouts of one batch:

* "group": one row per example, right-padded, with an attention mask;
* "pack": every example of the batch in one row, positions restarting at each example. Given
  position ids and no attention mask, transformers builds a block-diagonal causal mask, so no
  example attends to another, and nothing is padded. Attention then spans the whole row,
  though, and on CPU that costs more than the little padding grouping leaves (`autoreply
  bench train` measures both; "group" is the default).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from training.render import IGNORE_INDEX, Example

Layout = Literal["group", "pack"]
POOL_BATCHES = 50  # batches sorted together: little padding, still a shuffled order


@dataclass(frozen=True, slots=True)
class Batch:
    """Tensors for one forward pass. `tokens` counts real (unpadded) tokens."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor | None
    tokens: int
    targets: int

    def to(self, device: str) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return t.to(device, non_blocking=True) if t is not None else None

        return Batch(
            self.input_ids.to(device, non_blocking=True),
            self.labels.to(device, non_blocking=True),
            move(self.attention_mask),
            move(self.position_ids),
            self.tokens,
            self.targets,
        )


def epoch_order(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Example indices per batch for one epoch, grouped by length; the same for equal args."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * POOL_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def eval_order(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Validation batches: sorted by length, no shuffling (the order does not matter)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(examples: Sequence[Example], layout: Layout, pad_id: int) -> Batch:
    tokens = sum(len(e) for e in examples)
    targets = sum(e.n_targets for e in examples)
    if layout == "pack":
        ids = [i for e in examples for i in e.input_ids]
        labels = [label for e in examples for label in e.labels]
        positions = [p for e in examples for p in range(len(e))]
        return Batch(
            torch.tensor([ids]),
            torch.tensor([labels]),
            None,
            torch.tensor([positions]),
            tokens,
            targets,
        )
    width = max(len(e) for e in examples)
    ids_rows, label_rows, mask_rows = [], [], []
    for e in examples:
        pad = width - len(e)
        ids_rows.append([*e.input_ids, *([pad_id] * pad)])
        label_rows.append([*e.labels, *([IGNORE_INDEX] * pad)])
        mask_rows.append([1] * len(e) + [0] * pad)
    return Batch(
        torch.tensor(ids_rows),
        torch.tensor(label_rows),
        torch.tensor(mask_rows),
        None,
        tokens,
        targets,
    )
