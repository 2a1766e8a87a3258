"""Mixed-adapter batches as one gathered LoRA product per layer (LoRAX/Punica-style).

peft's `adapter_names=` path (`LoraLayer._mixed_batch_forward`) loops over the adapters in every
LoRA module at every decoding step: a Python scan of the row names, an index gather of that
adapter's rows, lora_A, lora_B, a scale and an index scatter-add. On a deep model (SmolLM2: 120
LoRA modules) with 4 adapters that is 480 small sub-forwards per step and costs ~28 % of the
step. Here each LoRA Linear instead runs `base(x) + (x @ A[row]) @ (scale * B)[row]` for all
rows at once: two `torch.bmm` over per-row matrices gathered once per `generate` call from
stacks built once per adapter set (zero-padded to the largest rank, slot 0 all zeros for the
base model), so a step costs the same few ops whatever the mix.

Only vanilla LoRA on `nn.Linear`/`Conv1D` is handled; anything else (DoRA and other variants,
embedding or conv LoRA, `modules_to_save`, LoRA bias, merged weights) makes `stacks_for`
return None and the caller keeps peft's path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from peft.tuners.lora.layer import Linear as LoraLinear
from peft.tuners.lora.layer import LoraLayer
from peft.utils.other import AuxiliaryTrainingWrapper

# peft's name for "no adapter" in a mixed batch (the host's BASE_ADAPTER).
BASE = "__base__"
# The default of `ModelHost.gathered_lora`. On by measurement: 16 rows over 4 adapters ran as
# fast as 16 rows of one (random GPT-2 and SmolLM2-135M, CPU), where peft's path ran slower.
GATHERED_LORA = True
# Distinct adapter sets whose stacks are kept; a set costs one more copy of its LoRA weights.
MAX_CACHED_SETS = 4


@dataclass(frozen=True, slots=True)
class ModuleStack:
    """One LoRA module's adapters side by side: slot 0 is the base model (zeros), slot i + 1
    the i-th adapter of the set; ranks are zero-padded to the largest."""

    module: LoraLinear
    # None where no adapter of the set targets this module: it runs the base layer alone
    # (peft's own forward would add the host's active adapter instead).
    a: torch.Tensor | None  # [slots, in, r]: lora_A transposed, ready for x @ a
    b: torch.Tensor | None  # [slots, r, out]: lora_B transposed, times peft's scaling


@dataclass(frozen=True, slots=True)
class AdapterStacks:
    """The stacks of every LoRA module of one model for one set of adapter names."""

    model: torch.nn.Module
    names: tuple[str, ...]
    modules: tuple[ModuleStack, ...]

    def slots(self, adapters: Sequence[str], device: torch.device) -> torch.Tensor:
        """Each row's slot: 0 for the base model, else 1 + the adapter's place in `names`."""
        index = {name: i + 1 for i, name in enumerate(self.names)}
        return torch.tensor([index.get(name, 0) for name in adapters], device=device)


class StackCache:
    """Stacks by adapter set, least recently used dropped first. The host clears it whenever
    an adapter is installed, replaced or unloaded, under its generation lock."""

    def __init__(self, max_sets: int = MAX_CACHED_SETS) -> None:
        self.max_sets = max_sets
        self._sets: OrderedDict[tuple[str, ...], AdapterStacks] = OrderedDict()

    def clear(self) -> None:
        self._sets.clear()

    def __len__(self) -> int:
        return len(self._sets)

    def stacks_for(self, model: torch.nn.Module, adapters: Sequence[str]) -> AdapterStacks | None:
        """The stacks for the adapters these rows use, or None where only peft's path can
        serve them (an unsupported layer, or a name no layer knows, which peft reports)."""
        names = tuple(sorted({name for name in adapters if name != BASE}))
        cached = self._sets.get(names)
        if cached is not None and cached.model is model:
            self._sets.move_to_end(names)
            return cached
        built = build_stacks(model, names)
        if built is None:
            return None
        self._sets[names] = built
        self._sets.move_to_end(names)
        while len(self._sets) > self.max_sets:
            self._sets.popitem(last=False)
        return built


def build_stacks(model: torch.nn.Module, names: tuple[str, ...]) -> AdapterStacks | None:
    """Stack every LoRA module's `names` adapters, or None if any layer is one we do not
    handle the way peft would."""
    stacks: list[ModuleStack] = []
    known: set[str] = set()
    for module in model.modules():
        if isinstance(module, AuxiliaryTrainingWrapper):
            return None  # modules_to_save / trainable tokens: peft routes those per row too
        if not isinstance(module, LoraLayer):
            continue
        # Exactly peft's Linear: subclasses (bnb, gptq, ...) compute their own way.
        if not isinstance(module, LoraLinear) or type(module) is not LoraLinear:
            return None  # embedding/conv/quantized LoRA
        if module.merged or module.training:
            return None  # merged weights (peft refuses them too), dropout live
        present = [name for name in names if name in module.lora_A]  # peft skips the rest
        known.update(present)
        if any(_unsupported(module, name) for name in present):
            return None
        stacks.append(
            _stack_module(module, names, present) if present else ModuleStack(module, None, None)
        )
    if known != set(names):
        return None  # peft raises "non-existing adapter(s)" for these
    return AdapterStacks(model, names, tuple(stacks))


def _unsupported(module: LoraLinear, name: str) -> bool:
    lora_b = module.lora_B[name]
    return (
        name in module.lora_variant  # DoRA, aLoRA, ...: their own forward
        or not isinstance(module.lora_A[name], torch.nn.Linear)
        or not isinstance(lora_b, torch.nn.Linear)
        or lora_b.bias is not None  # lora_bias=True
    )


def _stack_module(module: LoraLinear, names: tuple[str, ...], present: list[str]) -> ModuleStack:
    weights_a = {name: _weight(module.lora_A[name]) for name in present}
    weights_b = {name: _weight(module.lora_B[name]) for name in present}
    first = weights_a[present[0]]
    rank = max(w.shape[0] for w in weights_a.values())
    fan_in, fan_out = first.shape[1], weights_b[present[0]].shape[0]
    dtype = first.dtype  # peft casts a row's input to its lora_A dtype
    for weight in (*weights_a.values(), *weights_b.values()):
        dtype = torch.promote_types(dtype, weight.dtype)
    a = torch.zeros(len(names) + 1, fan_in, rank, dtype=dtype, device=first.device)
    b = torch.zeros(len(names) + 1, rank, fan_out, dtype=dtype, device=first.device)
    for slot, name in enumerate(names, start=1):
        if name not in weights_a:
            continue  # this module has no such adapter: its slot stays zero, as peft skips it
        r = weights_a[name].shape[0]
        a[slot, :, :r] = weights_a[name].t()
        # peft scales lora_B's output; folding the scale in (in fp32) saves a multiply a step.
        b[slot, :r, :] = (weights_b[name].float().t() * module.scaling[name]).to(dtype)
    return ModuleStack(module, a, b)


def _weight(layer: torch.nn.Module) -> torch.Tensor:
    weight = layer.weight
    assert isinstance(weight, torch.Tensor)
    return weight.detach()


@dataclass(slots=True)
class _RowWeights:
    """One module's per-row A and B for one `generate` call, by batch size: generate may run
    the rows expanded (beams, returned sequences are repeat-interleaved)."""

    a: torch.Tensor
    b: torch.Tensor
    slots: torch.Tensor
    by_batch: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def for_batch(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.by_batch.get(batch)
        if weights is None:
            rows = len(self.slots)
            if batch % rows:
                raise RuntimeError(
                    f"gathered LoRA forward got a batch of {batch} for {rows} adapter rows"
                )
            slots = self.slots.repeat_interleave(batch // rows)
            weights = (self.a.index_select(0, slots), self.b.index_select(0, slots))
            self.by_batch[batch] = weights
        return weights


def _gathered_forward(module: LoraLinear, rows: _RowWeights) -> Callable[..., torch.Tensor]:
    base_layer = module.get_base_layer()

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = base_layer(x, *args, **kwargs)
        a, b = rows.for_batch(x.shape[0])
        x3 = x.reshape(x.shape[0], -1, x.shape[-1]).to(a.dtype)
        delta = torch.bmm(torch.bmm(x3, a), b)
        out: torch.Tensor = result + delta.reshape(result.shape).to(result.dtype)
        return out

    return forward


@contextmanager
def gathered_lora(stacks: AdapterStacks, adapters: Sequence[str]) -> Iterator[None]:
    """Route each row (one name per row, `BASE` for none) through its own adapter in every
    LoRA module for the block, by replacing the modules' forward; always put peft's back.
    Hold the host's generation lock around it: the modules are shared model state."""
    slots: torch.Tensor | None = None
    patched: list[LoraLinear] = []
    try:
        for stack in stacks.modules:
            # A bound method, not the module: nn.Module would register a module as a child.
            forward: Callable[..., torch.Tensor] = stack.module.get_base_layer().__call__
            if stack.a is not None and stack.b is not None:
                if slots is None or slots.device != stack.a.device:
                    slots = stacks.slots(adapters, stack.a.device)
                forward = _gathered_forward(stack.module, _RowWeights(stack.a, stack.b, slots))
            # An instance attribute shadows the class's forward in nn.Module.__call__.
            stack.module.forward = forward  # type: ignore[method-assign]
            patched.append(stack.module)
        yield
    finally:
        for module in patched:
            del module.forward
