"""CPU int8 (`bot.nlp.quantize`) on tiny random GPT-2 and Llama models."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
from transformers import (
    AutoTokenizer,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
)
from transformers.pytorch_utils import Conv1D

from bot.errors import ConfigError
from bot.nlp import quantize
from bot.nlp.quantize import (
    VARIANTS,
    Variant,
    calibration_from_texts,
    conv1d_to_linear,
    merge_for_int8,
    perplexity,
    quantize_int8,
)
from tests.fixtures.models import LORA_TARGETS

TEXT = (
    "Hello! How can I help you today? Where is my order? It has been a week. Your order "
    "shipped yesterday and should arrive soon. Can I return these shoes if they do not fit?"
)


def _ids(vocab: int, length: int = 24, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(vocab, (1, length), generator=generator)


def _gpt2(model_dir: Path) -> PreTrainedModel:
    model: PreTrainedModel = GPT2LMHeadModel.from_pretrained(model_dir)
    return _eval(model)


def _eval(model: PreTrainedModel) -> PreTrainedModel:
    nn.Module.eval(model)  # PreTrainedModel's own `eval` is untyped
    return model


def _llama(num_kv_heads: int) -> PreTrainedModel:
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=128,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _eval(LlamaForCausalLM(config))


def _input_embeddings(model: PreTrainedModel) -> torch.Tensor:
    embeddings = model.get_input_embeddings()
    assert isinstance(embeddings, nn.Embedding)
    return embeddings.weight


@pytest.fixture(params=["gpt2", "llama-mha", "llama-gqa"])
def tiny_lm(request: pytest.FixtureRequest, tiny_model_dir: Path) -> PreTrainedModel:
    if request.param == "gpt2":
        return _gpt2(tiny_model_dir)
    return _llama(4 if request.param == "llama-mha" else 2)


@torch.no_grad()
def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    logits: torch.Tensor = model(input_ids=ids).logits
    return logits.float()


def test_conv1d_to_linear_keeps_logits(tiny_model_dir: Path) -> None:
    model = _gpt2(tiny_model_dir)
    ids = _ids(model.config.vocab_size)
    before = _logits(model, ids)

    converted = conv1d_to_linear(model)

    assert converted == 4 * model.config.n_layer  # c_attn, attn.c_proj, c_fc, mlp.c_proj
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    torch.testing.assert_close(_logits(model, ids), before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_smoothing_alone_is_exact(
    tiny_lm: PreTrainedModel, variant: Variant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With quantization switched off, the folded scales leave the function unchanged."""
    ids = _ids(tiny_lm.config.vocab_size)
    before = _logits(tiny_lm, ids)
    embeddings = _input_embeddings(tiny_lm).detach().clone()
    monkeypatch.setattr(quantize, "quantize_dynamic", lambda *args, **kwargs: None)

    quantize_int8(tiny_lm, calibration=[_ids(tiny_lm.config.vocab_size, seed=1)], variant=variant)

    torch.testing.assert_close(_logits(tiny_lm, ids), before, atol=1e-4, rtol=1e-4)
    # The head is smoothed on an untied copy: the input embeddings must not scale.
    torch.testing.assert_close(_input_embeddings(tiny_lm), embeddings)


@pytest.mark.parametrize("variant", VARIANTS)
def test_quantize_int8_replaces_linears_and_stays_close(
    tiny_lm: PreTrainedModel, variant: Variant
) -> None:
    ids = _ids(tiny_lm.config.vocab_size, length=48)
    before = _logits(tiny_lm, ids)
    calibration = [_ids(tiny_lm.config.vocab_size, seed=seed) for seed in (1, 2)]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = quantize_int8(tiny_lm, calibration=calibration, variant=variant)

    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
    int8 = [m for m in tiny_lm.modules() if isinstance(m, DynamicInt8Linear)]
    fp32 = [m for m in tiny_lm.modules() if type(m) is nn.Linear]
    assert report.variant == variant
    assert (report.layers_quantized, report.layers_kept_fp32) == (len(int8), len(fp32))
    assert report.layers_quantized > 0 and report.seconds >= 0
    after = _logits(tiny_lm, ids)
    agreement = (after.argmax(-1) == before.argmax(-1)).float().mean().item()
    assert agreement >= 0.9
    assert ((after - before).norm() / before.norm()).item() < 0.1


def test_dynamic_keeps_the_head_fp32_and_smooth_quantizes_it(tiny_model_dir: Path) -> None:
    dynamic, smooth = _gpt2(tiny_model_dir), _gpt2(tiny_model_dir)
    quantize_int8(dynamic, variant="dynamic")
    quantize_int8(smooth, variant="smooth")
    assert type(dynamic.lm_head) is nn.Linear
    assert isinstance(smooth.lm_head, DynamicInt8Linear)


def test_skip_variants_keep_outlier_layers_fp32(tiny_model_dir: Path) -> None:
    """With a zero threshold every input is an outlier: skip_outliers keeps everything, and
    smooth_skip keeps only the layers that do not read a norm's output."""
    skip, smooth_skip = _gpt2(tiny_model_dir), _gpt2(tiny_model_dir)
    report = quantize_int8(skip, variant="skip_outliers", outlier_threshold=0.0)
    assert report.layers_quantized == 0

    report = quantize_int8(smooth_skip, variant="smooth_skip", outlier_threshold=0.0)
    kept = {n.split(".", 3)[-1] for n, m in smooth_skip.named_modules() if type(m) is nn.Linear}
    assert kept == {"attn.c_proj", "mlp.c_proj"}
    assert report.layers_kept_fp32 == 2 * smooth_skip.config.n_layer


def test_unknown_variant_is_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="unknown int8 variant"):
        quantize_int8(_gpt2(tiny_model_dir), variant="int4")  # type: ignore[arg-type]


def test_a_model_off_the_cpu_is_refused(tiny_model_dir: Path) -> None:
    model = _gpt2(tiny_model_dir)
    nn.Module.to(model, "meta")  # stands in for CUDA, which CI does not have
    with pytest.raises(ConfigError, match="is for CPU"):
        quantize_int8(model)


def _lora(model: PreTrainedModel, *, seed: int) -> PeftModel:
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=LORA_TARGETS,
        fan_in_fan_out=True,
        init_lora_weights=False,  # random B: the adapter visibly changes the logits
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, config)


def test_a_peft_model_is_refused(tiny_model_dir: Path) -> None:
    peft_model = _lora(_gpt2(tiny_model_dir), seed=1)
    with pytest.raises(ConfigError, match="merge_for_int8"):
        quantize_int8(peft_model)  # type: ignore[arg-type]
    base = peft_model.get_base_model()  # the base with LoRA layers injected
    assert isinstance(base, PreTrainedModel)
    with pytest.raises(ConfigError, match="LoRA layers"):
        quantize_int8(base)


def test_merge_for_int8_merges_one_adapter(tiny_model_dir: Path, tiny_lora_dir: Path) -> None:
    peft_model = PeftModel.from_pretrained(_gpt2(tiny_model_dir), str(tiny_lora_dir))
    nn.Module.eval(peft_model)
    ids = _ids(peft_model.config.vocab_size)
    before = _logits(peft_model, ids)

    merged = merge_for_int8(peft_model)

    assert isinstance(merged, PreTrainedModel)
    assert not any(isinstance(m, BaseTunerLayer) for m in merged.modules())
    torch.testing.assert_close(_logits(merged, ids), before, atol=1e-4, rtol=1e-4)
    assert quantize_int8(merged).layers_quantized > 0


def test_merge_for_int8_refuses_several_adapters(
    tiny_model_dir: Path, tiny_lora_dir: Path, tiny_lora_dir_b: Path
) -> None:
    peft_model = PeftModel.from_pretrained(
        _gpt2(tiny_model_dir), str(tiny_lora_dir), adapter_name="support"
    )
    peft_model.load_adapter(str(tiny_lora_dir_b), adapter_name="sales")
    with pytest.raises(ConfigError, match=r"support, sales.*Unset AUTOREPLY_QUANTIZE"):
        merge_for_int8(peft_model)


def test_merge_for_int8_passes_a_plain_model_through(tiny_model_dir: Path) -> None:
    model = _gpt2(tiny_model_dir)
    assert merge_for_int8(model) is model


def test_perplexity_matches_the_models_own_loss(tiny_model_dir: Path) -> None:
    model = _gpt2(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    assert perplexity(model, tokenizer, TEXT) == pytest.approx(torch.exp(loss).item(), rel=1e-4)


def test_perplexity_slides_a_window_over_long_text(tiny_model_dir: Path) -> None:
    model = _gpt2(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model.config.n_positions = 16  # the window; the text is several windows long
    assert len(tokenizer(TEXT).input_ids) > 32
    value = perplexity(model, tokenizer, TEXT, stride=8)
    assert 1.0 < value < 10 * model.config.vocab_size
    with pytest.raises(ValueError, match="two tokens"):
        perplexity(model, tokenizer, "")


def test_calibration_from_texts_cuts_and_skips_empty(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = calibration_from_texts(tokenizer, [TEXT, "", "Hello!"], max_tokens=8)
    assert len(rows) == 2
    assert rows[0].shape == (1, 8)
    assert rows[1].shape[0] == 1 and rows[1].shape[1] < 8
