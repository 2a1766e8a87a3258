"""The base model and tokenizer for training, loaded exactly as the service loads them.

Same choice of model (`choose_model`: the configured one, or the bundled SmolLM2 when none is
set and gpt2 is out of reach), same loader (`load_pretrained`: hub id, directory or .gguf,
cache-first, one-line errors) and same device and dtype (`pick_device`: bf16 on a GPU, fp32
on CPU). An adapter trained on anything else would not fit the model that serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from bot.errors import ModelLoadError
from bot.nlp.embedded import choose_model
from bot.nlp.loading import load_pretrained, pick_device

if TYPE_CHECKING:
    from bot.config import Settings


@dataclass(frozen=True, slots=True)
class BaseModel:
    """A loaded base: `ref` is what was loaded (hub id, directory or .gguf path), which the
    registry records as the adapter's base model."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    ref: str
    device: str
    dtype: torch.dtype


def load_tokenizer(settings: Settings) -> tuple[str, PreTrainedTokenizerBase]:
    """(model ref, tokenizer): cheap, so data can be checked before the weights load."""
    ref = choose_model(settings).ref
    tokenizer = load_pretrained(ref, AutoTokenizer.from_pretrained)
    return ref, tokenizer


def load_base(
    settings: Settings,
    *,
    move: bool = True,
    tokenizer: tuple[str, PreTrainedTokenizerBase] | None = None,
) -> BaseModel:
    """The service's base model on the service's device. `move=False` leaves it on the CPU
    (for trainers that place it themselves); `tokenizer`: `load_tokenizer`'s answer, when the
    caller has it already (a .gguf file takes seconds to parse)."""
    if settings.cpu_threads is not None:
        torch.set_num_threads(settings.cpu_threads)
    ref, tokenizer_ = tokenizer or load_tokenizer(settings)
    device, dtype = pick_device(settings.device)
    model = load_pretrained(
        ref,
        AutoModelForCausalLM.from_pretrained,
        dtype=dtype,
        # As ModelHost.load: transformers 5 would otherwise look for an adapter on the hub.
        local_only_kwargs={"adapter_kwargs": {"local_files_only": True}},
    )
    if not isinstance(model, PreTrainedModel):  # pragma: no cover - guards the Any from HF
        raise ModelLoadError(f"cannot load model {ref!r}: it is not a causal language model")
    if ref.endswith(".gguf") and getattr(model, "hf_quantizer", None) is not None:
        # A .gguf checkpoint is dequantized to plain float weights on load, yet transformers
        # still marks the model quantized, and its Trainer (under TRL's DPO) then refuses to
        # train it. Nothing quantized remains to protect.
        setattr(model, "hf_quantizer", None)  # noqa: B010 - plain attributes, typed as modules
        setattr(model, "is_quantized", False)  # noqa: B010
    if move:
        module: torch.nn.Module = model  # typed calls (transformers wraps `to`)
        module.to(device)
    return BaseModel(model, tokenizer_, ref, device, dtype)
