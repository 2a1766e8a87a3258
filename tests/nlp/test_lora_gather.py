"""The gathered LoRA forward for mixed-adapter batches against peft's `adapter_names=` path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora.layer import LoraLayer
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    StoppingCriteria,
    StoppingCriteriaList,
)

from bot.nlp import lora_gather
from bot.nlp.lora_gather import BASE, StackCache, build_stacks, gathered_lora
from bot.nlp.models import BASE_ADAPTER, ModelHost
from tests.fixtures.models import LORA_TARGETS

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
PROMPTS = ["Where is my order?", "hi", "Can I return these shoes if they do not fit?", "Thanks"]


def save_lora(
    base: torch.nn.Module,
    out: Path,
    *,
    seed: int,
    r: int,
    targets: Sequence[str],
    fan_in_fan_out: bool = False,
    use_dora: bool = False,
) -> Path:
    """A LoRA adapter with random (non-zero) weights, saved as peft saves a trained one."""
    config = LoraConfig(
        r=r,
        lora_alpha=3 * r,  # scaling 3: a scale that is not folded in shows
        target_modules=list(targets),
        fan_in_fan_out=fan_in_fan_out,
        init_lora_weights=False,
        use_dora=use_dora,
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(str(out))
    peft_model.unload()  # give `base` back without LoRA layers for the next adapter
    return out


@pytest.fixture(scope="module")
def gpt2_adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three GPT-2 (Conv1D, fan_in_fan_out) adapters of ranks 4, 2 and 8; the third targets
    only c_attn, so the other modules lack it."""
    base = GPT2LMHeadModel.from_pretrained(tiny_model_dir)
    out = tmp_path_factory.mktemp("gather-gpt2")
    specs = [("one", 4, LORA_TARGETS), ("two", 2, LORA_TARGETS), ("six", 8, ["c_attn"])]
    return [
        save_lora(base, out / name, seed=i + 1, r=r, targets=t, fan_in_fan_out=True)
        for i, (name, r, t) in enumerate(specs)
    ]


@pytest.fixture(scope="module")
def llama_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama-style model (GQA, nn.Linear projections) with the tiny tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def llama_adapters(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = LlamaForCausalLM.from_pretrained(llama_dir)
    out = tmp_path_factory.mktemp("gather-llama")
    specs = [("one", 2, LLAMA_TARGETS), ("two", 8, LLAMA_TARGETS), ("six", 4, ["q_proj", "v_proj"])]
    return [
        save_lora(base, out / name, seed=i + 11, r=r, targets=t)
        for i, (name, r, t) in enumerate(specs)
    ]


def host_with(model_dir: Path, adapters: Sequence[Path]) -> ModelHost:
    host = ModelHost.load(str(model_dir), device="cpu")
    for path in adapters:
        host.load_adapter(path.name, str(path), activate=False)
    return host


def batch(host: ModelHost) -> tuple[torch.Tensor, torch.Tensor]:
    enc = host.tokenizer(PROMPTS * 2, return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


def greedy(host: ModelHost, tokens: int = 6, **extra: int) -> GenerationConfig:
    return GenerationConfig.from_dict(
        {
            "max_new_tokens": tokens,
            "min_new_tokens": tokens,  # every row runs every step
            "do_sample": False,
            "pad_token_id": host.pad_token_id,
            "eos_token_id": host.eos_token_id,
            **extra,
        }
    )


def run(
    host: ModelHost, adapters: Sequence[str | None], *, gathered: bool, **extra: int
) -> tuple[torch.Tensor, torch.Tensor]:
    host.gathered_lora = gathered
    ids, mask = batch(host)
    sequences, logits = host.generate(
        ids, mask, config=greedy(host, **extra), adapters=adapters, output_logits=True
    )
    assert logits is not None
    return sequences, torch.stack(logits)


def patched_modules(host: ModelHost) -> list[str]:
    return [n for n, m in host.model.named_modules() if "forward" in vars(m) | m._modules]


ROWS = ["one", None, "two", BASE_ADAPTER, "six", "one", "two", "six"]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_gathered_matches_peft_mixed_path_and_single_adapter_runs(
    kind: str,
    request: pytest.FixtureRequest,
) -> None:
    model_dir: Path = request.getfixturevalue("tiny_model_dir" if kind == "gpt2" else "llama_dir")
    adapters: list[Path] = request.getfixturevalue(f"{kind}_adapters")
    host = host_with(model_dir, adapters)
    calls: list[int] = []
    real = lora_gather.gathered_lora

    def spy(stacks: lora_gather.AdapterStacks, names: Sequence[str]) -> object:
        calls.append(len(stacks.modules))
        return real(stacks, names)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("bot.nlp.models.gathered_lora", spy)
        seq_g, logits_g = run(host, ROWS, gathered=True)
    assert calls and calls[0] == sum(isinstance(m, LoraLayer) for m in host.model.modules())
    assert patched_modules(host) == []  # peft's forwards are back
    seq_p, logits_p = run(host, ROWS, gathered=False)
    assert torch.equal(seq_g, seq_p)
    torch.testing.assert_close(logits_g, logits_p, atol=1e-5, rtol=1e-5)

    # Each row as in a plain call of the whole batch on its own adapter (or none).
    for adapter in ("one", "two", "six", None):
        host.set_active_adapter(adapter)
        seq_1, logits_1 = run(host, [adapter] * len(ROWS), gathered=True)
        rows = [i for i, name in enumerate(ROWS) if (name or BASE) == (adapter or BASE)]
        assert torch.equal(seq_g[rows], seq_1[rows])
        torch.testing.assert_close(logits_g[:, rows], logits_1[:, rows], atol=1e-5, rtol=1e-5)
    # The adapters matter: not every row came out alike.
    assert not torch.allclose(logits_g[:, 0], logits_g[:, 3])


def test_active_adapter_does_not_leak_into_modules_the_rows_adapters_skip(
    llama_dir: Path, llama_adapters: list[Path]
) -> None:
    """Adapter six targets only q/v: with "one" active, a row on six must get nothing on k/o
    (peft's own forward there would add the active adapter)."""
    host = host_with(llama_dir, llama_adapters)
    host.set_active_adapter("one")
    rows = ["six", BASE_ADAPTER] * 4
    seq_g, logits_g = run(host, rows, gathered=True)
    seq_p, logits_p = run(host, rows, gathered=False)
    assert torch.equal(seq_g, seq_p)
    torch.testing.assert_close(logits_g, logits_p, atol=1e-5, rtol=1e-5)


def test_beam_search_rows_are_expanded_like_peft(
    tiny_model_dir: Path, gpt2_adapters: list[Path]
) -> None:
    """generate repeat-interleaves the rows per beam. (peft's path only expands its names
    for `num_beams=` passed as a keyword, not in a GenerationConfig: called directly here.)"""
    host = host_with(tiny_model_dir, gpt2_adapters)
    seq_g, _ = run(host, ROWS, gathered=True, num_beams=2)
    ids, mask = batch(host)
    model: Any = host.model
    with torch.inference_mode(), host.adapter_layers_enabled():
        seq_p = model.generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=greedy(host),
            num_beams=2,
            adapter_names=[name or BASE for name in ROWS],
        )
    assert torch.equal(seq_g, seq_p)


def test_bf16_forward_close_to_peft(llama_dir: Path, llama_adapters: list[Path]) -> None:
    host = host_with(llama_dir, llama_adapters)
    model: Any = host.model
    model.to(torch.bfloat16)  # as on GPU (bf16 matmuls run on CPU too)
    ids, mask = batch(host)
    names = [name or BASE for name in ROWS]
    stacks = build_stacks(model, tuple(sorted({"one", "two", "six"})))
    assert stacks is not None
    assert {s.a.dtype for s in stacks.modules if s.a is not None} == {torch.bfloat16}
    with torch.inference_mode():
        with host.adapter_layers_enabled():
            peft_logits = model(input_ids=ids, attention_mask=mask, adapter_names=names).logits
        with gathered_lora(stacks, names):
            ours = model(input_ids=ids, attention_mask=mask).logits
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), peft_logits.float(), atol=0.05, rtol=0.05)


def test_forwards_are_restored_when_generate_fails(
    tiny_model_dir: Path, gpt2_adapters: list[Path]
) -> None:
    class Boom(StoppingCriteria):
        def __call__(self, *args: object, **kwargs: object) -> torch.BoolTensor:
            raise RuntimeError("boom")

    host = host_with(tiny_model_dir, gpt2_adapters)
    ids, mask = batch(host)
    with pytest.raises(RuntimeError, match="boom"):
        host.generate(
            ids, mask, config=greedy(host), adapters=ROWS, stopping=StoppingCriteriaList([Boom()])
        )
    assert patched_modules(host) == []


@pytest.mark.filterwarnings("ignore:Adapter .* was active which is now deleted:UserWarning")
def test_stacks_are_rebuilt_when_an_adapter_is_replaced_or_unloaded(
    tiny_model_dir: Path, gpt2_adapters: list[Path]
) -> None:
    host = host_with(tiny_model_dir, gpt2_adapters)
    rows = ["one", "two"] * 4
    run(host, rows, gathered=True)
    assert len(host._lora_stacks) == 1
    host.load_adapter("one", str(gpt2_adapters[2]), activate=False)  # "one" now holds six's weights
    assert len(host._lora_stacks) == 0
    seq_g, logits_g = run(host, rows, gathered=True)
    seq_p, logits_p = run(host, rows, gathered=False)
    assert torch.equal(seq_g, seq_p)
    torch.testing.assert_close(logits_g, logits_p, atol=1e-5, rtol=1e-5)
    run(host, rows, gathered=True)
    host.max_loaded = 1
    host.ensure_loaded("two")  # evicts the others
    assert len(host._lora_stacks) == 0


def test_stack_cache_keeps_a_few_sets(tiny_model_dir: Path, gpt2_adapters: list[Path]) -> None:
    host = host_with(tiny_model_dir, gpt2_adapters)
    cache = StackCache(max_sets=2)
    first = cache.stacks_for(host.model, ["one", BASE, "two"])
    assert first is not None and first.names == ("one", "two")
    assert cache.stacks_for(host.model, ["two", "one"]) is first  # order and base do not matter
    cache.stacks_for(host.model, ["six"])
    cache.stacks_for(host.model, ["one"])
    assert len(cache) == 2
    assert cache.stacks_for(host.model, ["nope"]) is None  # peft reports unknown names


def test_unsupported_layers_fall_back_to_peft(
    tiny_model_dir: Path, gpt2_adapters: list[Path], tmp_path: Path
) -> None:
    """A DoRA adapter is not handled here: the call goes the peft way, which refuses it as
    it always did."""
    dora = save_lora(
        GPT2LMHeadModel.from_pretrained(tiny_model_dir),
        tmp_path / "dora",
        seed=5,
        r=4,
        targets=LORA_TARGETS,
        fan_in_fan_out=True,
        use_dora=True,
    )
    host = host_with(tiny_model_dir, [gpt2_adapters[0], dora])
    assert build_stacks(host.model, ("one", "dora")) is None
    assert build_stacks(host.model, ("one",)) is not None
    with pytest.raises(ValueError, match="DoRA"):
        run(host, ["one", "dora"] * 4, gathered=True)
    assert patched_modules(host) == []
