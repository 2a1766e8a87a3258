"""LoRA presets: GPT-2's Conv1D layers, Llama-style projections, and a clear refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import TaskType, get_peft_model
from transformers import GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from benchmarks.bench_models import write_random_lora
from bot.errors import ConfigError
from training.lora import UnknownArchitectureError, lora_config, lora_preset

# peft calls a transformers API deprecated in 5.x; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def tiny_llama() -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def test_gpt2_wraps_its_conv1d_layers_transposed(tiny_model_dir: Path) -> None:
    model = GPT2LMHeadModel.from_pretrained(tiny_model_dir)
    config = lora_config(model, TaskType.CAUSAL_LM)
    assert set(config.target_modules or ()) == {"c_attn", "c_proj", "c_fc"}
    assert config.fan_in_fan_out and (config.r, config.lora_alpha) == (8, 16)
    wrapped = get_peft_model(model, config)
    assert wrapped.get_nb_trainable_parameters()[0] > 0


def test_llama_style_models_wrap_the_attention_projections() -> None:
    model = tiny_llama()
    config = lora_config(model, TaskType.CAUSAL_LM, r=4, alpha=8, dropout=0.0)
    assert set(config.target_modules or ()) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert not config.fan_in_fan_out
    wrapped = get_peft_model(model, config)
    ids = torch.tensor([[1, 2, 3]])
    assert wrapped(input_ids=ids).logits.shape == (1, 3, 64)
    assert lora_preset("qwen2") == lora_preset("mistral") == lora_preset("llama")


def test_an_unknown_architecture_says_how_to_name_the_targets() -> None:
    with pytest.raises(UnknownArchitectureError, match="--lora-targets") as info:
        lora_preset("t5")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    assert lora_preset("t5", ["q", "v"]).targets == ("q", "v")


def test_the_benchmark_adapters_use_the_presets(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = GPT2LMHeadModel.from_pretrained(tiny_model_dir)
    out = write_random_lora(model, "gpt2", tmp_path / "lora", seed=1, rank=2)
    assert (out / "adapter_model.safetensors").is_file()
    with pytest.raises(ValueError, match="no LoRA preset"):
        write_random_lora(model, "t5", tmp_path / "other", seed=1)
