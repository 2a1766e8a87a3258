"""A .gguf base loads for training as plain float weights: transformers' Trainer (under TRL's
DPO) must not refuse it as "quantized"."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers.trainer_utils import validate_quantization_for_training

from tests.training.reply_data import make_settings
from training.base import load_base

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def test_a_gguf_base_is_trainable(tiny_gguf_file: Path, tmp_path: Path) -> None:
    base = load_base(make_settings(tmp_path, tiny_gguf_file))
    validate_quantization_for_training(base.model)  # type: ignore[no-untyped-call]  # raised "GGUF ... training"
    assert all(p.dtype.is_floating_point for p in base.model.parameters())
