"""Optional CPU int8: dynamic int8 Linear layers for the base model (AUTOREPLY_QUANTIZE=int8).

Design: int8 quantizes the base weights after merging at most one adapter (`merge_for_int8`);
mixed adapters are refused, since peft's per-row adapters need float base layers.

`quantize_dynamic` quantizes weights per output channel and activations per tensor (7-bit on
x86) at each call, so one large input channel or token costs every other value its precision.
On SmolLM2 the inputs of `down_proj` reach |x| > 2,000. Variants (benchmarks/int8_bench.py
measures them; numbers in the module's constants come from there):

- "dynamic": every Linear but the head. Fastest to build; SmolLM2 perplexity about doubles.
- "smooth": SmoothQuant. Input channel j of a Linear is divided by
  s_j = max|x_j|^alpha / max|W_j|^(1-alpha) and weight column j multiplied by s_j: the product
  is unchanged but the outliers move into the weights. The division is folded into the op
  that produces the input (a norm, up_proj, v_proj), so it costs nothing per token.
- "skip_outliers": Linear layers whose calibration inputs exceed a threshold stay fp32.
- "smooth_skip": "smooth", then "skip_outliers" for the layers that do not read a norm's
  output (down_proj, o_proj): the most accurate, and the default.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import torch
from peft import PeftModel
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from bot.errors import ConfigError

log = logging.getLogger(__name__)

Variant = Literal["dynamic", "smooth", "skip_outliers", "smooth_skip"]
VARIANTS: tuple[Variant, ...] = ("dynamic", "smooth", "skip_outliers", "smooth_skip")
_SMOOTHED = frozenset({"smooth", "smooth_skip"})
_SKIPPING = frozenset({"skip_outliers", "smooth_skip"})
_HEAD = "lm_head"
_NORMS = ("norm", "ln_1", "ln_2", "ln_f")  # module names of Llama-style and GPT-2 norms
# Chosen from measurements on SmolLM2-135M; see benchmarks/int8_bench.py.
DEFAULT_VARIANT: Variant = "smooth_skip"
DEFAULT_ALPHA = 0.7
# Inputs above this (max |x| over the calibration tokens) are outliers for the skip variants.
OUTLIER_THRESHOLD = 6.0
# Model types whose Llama-style norms scale by `weight` (not `1 + weight` as Gemma's do), so
# that dividing the norm weight by s divides its output by s.
_LLAMA_STYLE = frozenset({"llama", "mistral", "qwen2"})


@dataclass(frozen=True, slots=True)
class QuantReport:
    """What `quantize_int8` did: the variant it ran and how many Linear layers it changed."""

    variant: Variant
    layers_quantized: int
    layers_kept_fp32: int
    seconds: float


def conv1d_to_linear(model: nn.Module) -> int:
    """Replace every transformers `Conv1D` (GPT-2) by an equivalent `nn.Linear`, in place.

    `quantize_dynamic` only knows `nn.Linear` and silently skips Conv1D. Returns the count.
    """
    converted = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, Conv1D):
            continue
        weight = module.weight  # (in, out): Conv1D computes x @ W
        linear = nn.Linear(
            weight.shape[0], weight.shape[1], device=weight.device, dtype=weight.dtype
        )
        with torch.no_grad():
            linear.weight.copy_(weight.t())
            linear.bias.copy_(module.bias)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, linear)
        converted += 1
    return converted


def merge_for_int8(model: PreTrainedModel | PeftModel) -> PreTrainedModel:
    """Merge the one LoRA adapter of `model` into its base weights and return the base.

    A plain model comes back as it is. More than one adapter cannot be served from int8
    weights (each row of a mixed batch needs its own float LoRA path), so that is refused.
    """
    if not isinstance(model, PeftModel):
        return model
    names = list(model.peft_config)
    if len(names) > 1:
        raise ConfigError(
            f"AUTOREPLY_QUANTIZE=int8 serves one merged adapter per process, but adapters "
            f"{', '.join(names)} are loaded. Unset AUTOREPLY_QUANTIZE to serve several accounts' "
            "adapters in one batch, or run one process per adapter"
        )
    merged = model.merge_and_unload()
    if not isinstance(merged, PreTrainedModel):  # pragma: no cover - guards peft's Any
        raise TypeError(f"merge_and_unload returned {type(merged).__name__}")
    return merged


def quantize_int8(
    model: PreTrainedModel,
    *,
    calibration: Sequence[torch.Tensor] | None = None,
    variant: Variant = DEFAULT_VARIANT,
    alpha: float = DEFAULT_ALPHA,
    outlier_threshold: float = OUTLIER_THRESHOLD,
) -> QuantReport:
    """Quantize the Linear layers of `model` (on CPU, no adapters) to dynamic int8, in place.

    `calibration` holds input-id tensors (see `calibration_from_texts`) for every variant but
    "dynamic". Pass a few chats: without them seeded random ids are used, which find the same
    outlier channels but worse scales (SmolLM2, smooth_skip: +7% perplexity against +0.5%).
    `lm_head` is quantized only where it can be smoothed. The report's variant is what ran:
    a model type without smoothing rules falls back to "skip_outliers".
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown int8 variant {variant!r}; use one of {', '.join(VARIANTS)}")
    _check_quantizable(model)
    start = time.perf_counter()
    nn.Module.eval(model)  # no dropout in the calibration statistics
    conv1d_to_linear(model)
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    smoothed: set[str] = set()  # smoothed layers that read a norm's output
    keep: set[str] = set()
    if variant != "dynamic":
        absmax = _input_absmax(model, linears, calibration or _random_calibration(model))
        if variant in _SMOOTHED and _HEAD in linears:
            # The head's weight is usually tied to the input embeddings, which must not scale.
            head = linears[_HEAD]
            head.weight = nn.Parameter(head.weight.detach().clone(), requires_grad=False)
        groups = _smoothing_groups(model) if variant in _SMOOTHED else []
        if groups is None:
            log.warning("int8: no smoothing for model type %r", model.config.model_type)
            variant = "skip_outliers"
        for group in groups or []:
            _smooth(group, absmax[group.names[0]], alpha)
            if group.after_norm:
                smoothed.update(group.names)
        if variant in _SKIPPING:
            # A norm's output is bounded per token, so once smoothed it quantizes well; the
            # other inputs (down_proj, o_proj) carry SmolLM2's massive activations.
            outliers = {name for name, amax in absmax.items() if amax.max() > outlier_threshold}
            keep = outliers - smoothed
    # The head is the largest matmul, but unsmoothed int8 cost SmolLM2 +17% perplexity alone.
    keep |= {_HEAD} & (set(linears) - smoothed)
    targets = {name: per_channel_dynamic_qconfig for name in linears if name not in keep}
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated for torchao, which is not a dependency: its
        # int8 was measured slower on this CPU. Silence only these warnings (pytest -W error).
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor, torch.quantize_per_channel")
        quantize_dynamic(model, targets, dtype=torch.qint8, inplace=True)  # type: ignore[no-untyped-call]
    report = QuantReport(variant, len(targets), len(keep), time.perf_counter() - start)
    log.info(
        "int8 %s: %d Linear layers quantized, %d kept fp32 (%.1f s)",
        report.variant,
        report.layers_quantized,
        report.layers_kept_fp32,
        report.seconds,
    )
    return report


def calibration_from_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, max_tokens: int = 128
) -> list[torch.Tensor]:
    """Input ids for `quantize_int8`: each text cut to `max_tokens`, one tensor per text."""
    return [
        tokenizer(text, return_tensors="pt").input_ids[:, :max_tokens] for text in texts if text
    ]


def _check_quantizable(model: PreTrainedModel) -> None:
    device = next(model.parameters()).device
    if device.type == "cuda":
        raise ConfigError(
            "AUTOREPLY_QUANTIZE=int8 is for CPU; unset it on a GPU, where bf16 is used"
        )
    if device.type != "cpu":
        raise ConfigError(
            f"AUTOREPLY_QUANTIZE=int8 is for CPU, but the model is on {device.type}; set "
            "AUTOREPLY_DEVICE=cpu or unset AUTOREPLY_QUANTIZE"
        )
    if isinstance(model, PeftModel) or any(isinstance(m, BaseTunerLayer) for m in model.modules()):
        raise ConfigError(
            "int8 quantizes the base weights after merging at most one adapter; this model has "
            "LoRA layers. Call merge_for_int8 first (one adapter), or unset AUTOREPLY_QUANTIZE "
            "to serve several adapters"
        )


def _random_calibration(model: PreTrainedModel) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    vocab = int(model.config.vocab_size)
    return [torch.randint(vocab, (1, 128), generator=generator) for _ in range(4)]


@torch.no_grad()
def _input_absmax(
    model: PreTrainedModel, linears: dict[str, nn.Linear], calibration: Sequence[torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Per input channel, the largest |x| each Linear saw over the calibration inputs."""
    absmax: dict[str, torch.Tensor] = {}

    def hook_for(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(dim=0).float()
            absmax[name] = torch.maximum(absmax[name], x) if name in absmax else x

        return hook

    handles = [linear.register_forward_pre_hook(hook_for(n)) for n, linear in linears.items()]
    try:
        for ids in calibration:
            model(input_ids=ids.reshape(1, -1) if ids.dim() == 1 else ids)
    finally:
        for handle in handles:
            handle.remove()
    return absmax


@dataclass(frozen=True, slots=True)
class _Group:
    """Linear layers that read one input, and the rows (dim 0) of the parameters that produce
    that input, which are divided by s in its place."""

    names: tuple[str, ...]
    linears: tuple[nn.Linear, ...]
    producers: tuple[tuple[torch.Tensor, slice], ...]
    after_norm: bool  # the input is a norm's output


_Producers = Sequence[tuple[str, slice]]


def _whole(*paths: str) -> list[tuple[str, slice]]:
    return [(path, slice(None)) for path in paths]


def _smoothing_groups(model: PreTrainedModel) -> list[_Group] | None:
    """Every Linear input that a scale can be folded into, per architecture; None: unknown."""
    model_type = model.config.model_type
    if model_type in _LLAMA_STYLE:
        blocks = [n for n, m in model.named_modules() if hasattr(m, "post_attention_layernorm")]
        groups = [g for block in blocks for g in _llama_groups(model, block)]
        return [*groups, _group(model, [_HEAD], _whole("model.norm.weight"))]
    if model_type == "gpt2":
        blocks = [n for n, m in model.named_modules() if hasattr(m, "ln_2")]
        groups = [g for block in blocks for g in _gpt2_groups(model, block)]
        final_norm = _whole("transformer.ln_f.weight", "transformer.ln_f.bias")
        return [*groups, _group(model, [_HEAD], final_norm)]
    return None


def _llama_groups(model: nn.Module, block: str) -> list[_Group]:
    def group(linears: Sequence[str], *producers: str) -> _Group:
        return _group(model, [f"{block}.{n}" for n in linears], _whole(*producers), block)

    attn = "self_attn"
    groups = [
        group([f"{attn}.q_proj", f"{attn}.k_proj", f"{attn}.v_proj"], "input_layernorm.weight"),
        group(["mlp.gate_proj", "mlp.up_proj"], "post_attention_layernorm.weight"),
        # act_fn(gate) * up is elementwise in up's output: dividing up's rows divides the input.
        group(["mlp.down_proj"], "mlp.up_proj.weight", "mlp.up_proj.bias"),
    ]
    # With grouped-query attention one value row feeds several heads of o_proj's input, so a
    # per-channel scale cannot be folded into v_proj: o_proj then stays unsmoothed.
    v_proj = _linear(model, f"{block}.{attn}.v_proj")
    if v_proj.out_features == _linear(model, f"{block}.{attn}.o_proj").in_features:
        groups.append(group([f"{attn}.o_proj"], f"{attn}.v_proj.weight", f"{attn}.v_proj.bias"))
    return groups


def _gpt2_groups(model: nn.Module, block: str) -> list[_Group]:
    # c_attn's output is [query | key | value]; attention mixes value rows linearly per head.
    width = _linear(model, f"{block}.attn.c_proj").in_features
    value = slice(2 * width, 3 * width)
    return [
        _group(model, [f"{block}.attn.c_attn"], _whole("ln_1.weight", "ln_1.bias"), block),
        _group(model, [f"{block}.mlp.c_fc"], _whole("ln_2.weight", "ln_2.bias"), block),
        _group(
            model,
            [f"{block}.attn.c_proj"],
            [("attn.c_attn.weight", value), ("attn.c_attn.bias", value)],
            block,
        ),
        # mlp.c_proj reads GELU(c_fc(x)): nothing linear to fold into, so it stays unsmoothed.
    ]


def _group(
    model: nn.Module, linears: Sequence[str], producers: _Producers, block: str = ""
) -> _Group:
    rows = []
    for path, where in producers:
        owner, _, attr = f"{block}.{path}".strip(".").rpartition(".")
        param = getattr(model.get_submodule(owner), attr)
        if param is not None:  # layers without a bias
            rows.append((cast(torch.Tensor, param), where))
    layers = tuple(_linear(model, name) for name in linears)
    after_norm = all(path.rpartition(".")[0].endswith(_NORMS) for path, _ in producers)
    return _Group(tuple(linears), layers, tuple(rows), after_norm)


def _linear(model: nn.Module, path: str) -> nn.Linear:
    module = model.get_submodule(path)
    if not isinstance(module, nn.Linear):
        raise TypeError(f"{path} is a {type(module).__name__}, expected nn.Linear")
    return module


@torch.no_grad()
def _smooth(group: _Group, absmax: torch.Tensor, alpha: float) -> None:
    # The layers share one input and so one scale; max|W_j| is taken over all of them.
    weight_max = torch.stack([linear.weight.abs().amax(dim=0) for linear in group.linears])
    act = absmax.clamp(min=1e-5).pow(alpha)
    scale = (act / weight_max.amax(dim=0).clamp(min=1e-5).pow(1 - alpha)).clamp(min=1e-5)
    for linear in group.linears:
        linear.weight.mul_(scale)  # column j times s_j
    for param, rows in group.producers:
        target = param[rows]
        target.div_(scale.view(-1, *([1] * (target.dim() - 1))))


def perplexity(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: str, *, stride: int = 512
) -> float:
    """Causal-LM perplexity of `text`: windows as long as the model's positions, moved on by
    `stride` tokens, each token scored once with as much left context as the window holds."""
    ids = tokenizer(text, return_tensors="pt").input_ids
    total = ids.shape[1]
    if total < 2:
        raise ValueError("perplexity needs a text of at least two tokens")
    window = _max_positions(model)
    stride = max(1, min(stride, window))  # a longer stride would leave tokens unscored
    nll = torch.zeros((), dtype=torch.float64)
    scored = 0
    prev_end = 0
    with torch.no_grad():
        for begin in range(0, total, stride):
            end = min(begin + window, total)
            chunk = ids[:, begin:end]
            logits = model(input_ids=chunk).logits[0, :-1].float()
            losses = nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="none")
            # Target k is token begin+k+1; the tokens before prev_end were scored already.
            fresh = losses[max(prev_end - begin - 1, 0) :]
            nll += fresh.double().sum()
            scored += fresh.numel()
            prev_end = end
            if end == total:
                break
    return float(torch.exp(nll / scored))


def _max_positions(model: PreTrainedModel) -> int:
    for attr in ("n_positions", "max_position_embeddings"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024
