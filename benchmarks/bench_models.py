"""Models for benchmarks without hub access: a GPT-2 124M shaped model with random weights
(the compute per token is that of real GPT-2), and random LoRA adapters for any loaded model.

The adapters are written straight to peft's save_pretrained layout from the base model's
layer shapes, so the model in memory is never wrapped or changed by making them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from benchmarks.tiny_model import _train_tokenizer
from training.lora import lora_preset

# Saved once (about 500 MB, git-ignored) and reused by every benchmark run.
RANDOM_GPT2_DIR = Path(__file__).resolve().parents[1] / ".bench" / "random-gpt2-124m"


def random_gpt2_dir(path: Path = RANDOM_GPT2_DIR) -> Path:
    """GPT-2 124M (12 layers, 768 wide, 50,257 tokens) with seeded random weights, and a small
    byte-level tokenizer trained on the fly (its ids are a subset of the model's): nothing is
    downloaded."""
    if (path / "config.json").is_file():
        return path
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    eos = tokenizer.eos_token_id
    config = GPT2Config(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    return path


def write_random_lora(
    model: torch.nn.Module, model_type: str, out: Path, *, seed: int, rank: int = 8
) -> Path:
    """A LoRA adapter (rank `rank`, both matrices random so it changes the outputs) for
    `model`, saved under `out` as peft would save a trained one."""
    preset = lora_preset(model_type)  # ValueError for an architecture without a preset
    targets = preset.targets
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] not in targets:
            continue
        if isinstance(module, Conv1D):
            fan_in, fan_out = module.weight.shape
        elif isinstance(module, torch.nn.Linear):
            fan_in, fan_out = module.in_features, module.out_features
        else:
            continue
        prefix = f"base_model.model.{name}"
        weights[f"{prefix}.lora_A.weight"] = torch.randn(rank, fan_in, generator=generator) * 0.02
        weights[f"{prefix}.lora_B.weight"] = torch.randn(fan_out, rank, generator=generator) * 0.02
    out.mkdir(parents=True, exist_ok=True)
    LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=list(targets),
        fan_in_fan_out=preset.fan_in_fan_out,
        task_type="CAUSAL_LM",
    ).save_pretrained(str(out))
    save_file(weights, str(out / "adapter_model.safetensors"))
    return out
