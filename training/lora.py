"""LoRA presets per architecture: which layers an adapter wraps, and how.

GPT-2 keeps its projections in `Conv1D` layers whose weights are stored transposed, so its
adapters need `fan_in_fan_out=True`; Llama-style models (SmolLM2, Mistral, Qwen2) use plain
`nn.Linear` attention projections. A model type without a preset is refused with the way out:
pass the module names yourself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from peft import LoraConfig, TaskType

from bot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class LoraPreset:
    """The modules an adapter wraps on one architecture."""

    targets: tuple[str, ...]
    fan_in_fan_out: bool = False


_GPT2 = LoraPreset(("c_attn", "c_proj", "c_fc"), fan_in_fan_out=True)
_LLAMA = LoraPreset(("q_proj", "k_proj", "v_proj", "o_proj"))

# `config.model_type` -> preset. SmolLM2 reports "llama"; SmolLM3 has its own type.
PRESETS: dict[str, LoraPreset] = {
    "gpt2": _GPT2,
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "smollm3": _LLAMA,
}


class UnknownArchitectureError(ConfigError, ValueError):
    """No preset for this model type; the message says how to name the targets."""


def lora_preset(model_type: str, targets: Sequence[str] | None = None) -> LoraPreset:
    """The preset for `model_type`, or the given `targets` (fan_in_fan_out as the preset says,
    False for an unknown type)."""
    preset = PRESETS.get(model_type)
    if targets:
        return LoraPreset(tuple(targets), preset.fan_in_fan_out if preset else False)
    if preset is None:
        known = ", ".join(sorted(PRESETS))
        raise UnknownArchitectureError(
            f"no LoRA preset for model type {model_type!r} (presets: {known}); pass the names "
            "of its attention projection layers, e.g. `autoreply train reply --lora-targets "
            "q_proj,v_proj` (print the model to see them), or add a preset to training/lora.py"
        )
    return preset


def model_type(model: torch.nn.Module) -> str:
    """`config.model_type` of a transformers model ("" when it has no config)."""
    config = getattr(model, "config", None)
    return str(getattr(config, "model_type", "") or "")


def lora_config(
    model: torch.nn.Module,
    task_type: TaskType | str,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    targets: Sequence[str] | None = None,
) -> LoraConfig:
    """A LoRA config for `model` from its architecture's preset (or the given `targets`)."""
    preset = lora_preset(model_type(model), targets)
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(preset.targets),
        fan_in_fan_out=preset.fan_in_fan_out,
        task_type=task_type,
    )
