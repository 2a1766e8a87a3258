"""ModelHost: loading, adapters and the errors an operator sees."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from bot.errors import ModelLoadError, NotFoundError
from bot.nlp.models import BASE_ADAPTER, ModelHost, adapter_name_for
from tests.fixtures.models import make_lora

# peft calls a transformers API deprecated in 5.x; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

IDS = torch.tensor([[5, 17, 42, 99, 7, 3]])


def logits(host: ModelHost) -> torch.Tensor:
    with torch.inference_mode():
        out = host.model(input_ids=IDS)
    assert isinstance(out.logits, torch.Tensor)
    return out.logits


def test_loads_save_pretrained_dir_on_cpu(tiny_model_dir: Path) -> None:
    host = ModelHost.load(str(tiny_model_dir), device="cpu")
    assert host.device == "cpu"
    assert host.dtype == torch.float32
    assert host.tokenizer.pad_token == host.tokenizer.eos_token == "<|endoftext|>"
    assert host.tokenizer.padding_side == "left"
    assert host.max_positions == 1024
    assert host.eos_token_id == host.tokenizer.eos_token_id
    assert host.name == str(tiny_model_dir)
    assert host.adapter_names == ()
    assert host.active_adapter is None
    assert not host.model.training
    # The trained tokenizer really tokenizes (the vocab_file route gives []).
    assert len(host.tokenizer.encode("Where is my order?")) > 0


def test_adapter_changes_logits_and_merged_matches_unmerged(
    tiny_host: ModelHost, tiny_lora_dir: Path
) -> None:
    base = logits(tiny_host)
    tiny_host.load_adapter("support", str(tiny_lora_dir))
    assert tiny_host.adapter_names == ("support",)
    assert tiny_host.active_adapter == "support"
    assert tiny_host.name == f"{tiny_host.model_id}+support"
    adapted = logits(tiny_host)
    assert not torch.allclose(base, adapted)

    model = tiny_host.model
    model.merge_adapter()  # type: ignore[operator]
    try:
        assert torch.allclose(logits(tiny_host), adapted, atol=1e-5)
    finally:
        model.unmerge_adapter()  # type: ignore[operator]
    assert torch.allclose(logits(tiny_host), adapted, atol=1e-5)

    tiny_host.set_active_adapter(None)
    assert torch.allclose(logits(tiny_host), base, atol=1e-6)
    assert tiny_host.name == tiny_host.model_id


def test_load_with_adapter_argument_names_it_after_the_directory(
    tiny_model_dir: Path, tiny_lora_dir_b: Path
) -> None:
    host = ModelHost.load(str(tiny_model_dir), device="cpu", adapter=str(tiny_lora_dir_b))
    # "sales.v2": dots are not allowed in peft adapter names (module-dict keys).
    assert host.adapter_names == ("sales_v2",)
    assert host.active_adapter == "sales_v2"
    assert not host.model.training


def test_two_adapters_switch_and_resolve(
    tiny_host: ModelHost, tiny_lora_dir: Path, tiny_lora_dir_b: Path
) -> None:
    base = logits(tiny_host)
    tiny_host.load_adapter("support", str(tiny_lora_dir))
    support = logits(tiny_host)
    tiny_host.load_adapter("sales", str(tiny_lora_dir_b))
    assert tiny_host.active_adapter == "sales"
    assert not torch.allclose(logits(tiny_host), support)
    tiny_host.set_active_adapter("support")
    assert torch.allclose(logits(tiny_host), support, atol=1e-6)

    assert tiny_host.resolve_adapter(None) == "support"
    assert tiny_host.resolve_adapter(BASE_ADAPTER) is None
    assert tiny_host.resolve_adapter("sales") == "sales"
    with pytest.raises(NotFoundError, match="'nope' is not loaded"):
        tiny_host.resolve_adapter("nope")
    tiny_host.set_active_adapter(None)
    assert torch.allclose(logits(tiny_host), base, atol=1e-6)


def test_reloading_an_adapter_replaces_it(tiny_host: ModelHost, tiny_lora_dir: Path) -> None:
    tiny_host.load_adapter("support", str(tiny_lora_dir))
    first = logits(tiny_host)
    tiny_host.load_adapter("support", str(tiny_lora_dir))
    assert tiny_host.adapter_names == ("support",)
    assert torch.allclose(logits(tiny_host), first, atol=1e-6)


@pytest.mark.parametrize("kind", ["missing", "no-config"])
def test_bad_adapter_path_names_the_setting(
    tiny_host: ModelHost, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "adapter"
    if kind == "no-config":
        path.mkdir()
    with pytest.raises(ModelLoadError, match="AUTOREPLY_ADAPTER") as info:
        tiny_host.load_adapter("support", str(path))
    assert "\n" not in str(info.value)


def test_adapter_for_another_model_fails_and_leaves_the_base_intact(
    tiny_host: ModelHost, tiny_model_dir: Path, tiny_lora_dir: Path, tmp_path: Path
) -> None:
    # A narrower GPT-2 with the same tokenizer: its LoRA weights have the wrong shapes.
    other = tmp_path / "other"
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(other)
    vocab = len(tiny_host.tokenizer)
    GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=1, n_head=2)).save_pretrained(
        other
    )
    foreign = make_lora(other, tmp_path / "foreign", seed=3)

    base = logits(tiny_host)
    with pytest.raises(ModelLoadError, match="AUTOREPLY_ADAPTER was trained for this model"):
        tiny_host.load_adapter("support", str(foreign))
    assert tiny_host.adapter_names == ()
    assert torch.equal(logits(tiny_host), base)  # no half-injected LoRA layers left behind

    tiny_host.load_adapter("support", str(tiny_lora_dir))
    good = logits(tiny_host)
    with pytest.raises(ModelLoadError):
        tiny_host.load_adapter("support", str(foreign))  # a failed replacement drops the name
    assert tiny_host.adapter_names == ()
    assert tiny_host.active_adapter is None
    assert torch.equal(logits(tiny_host), base)
    tiny_host.load_adapter("support", str(tiny_lora_dir))
    assert torch.allclose(logits(tiny_host), good, atol=1e-6)


@pytest.mark.parametrize("model", ["/no/such/model", "./missing-dir", "~/nope", "small.gguf"])
def test_missing_local_path_says_it_does_not_exist(model: str) -> None:
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        ModelHost.load(model, device="cpu")
    assert "AUTOREPLY_MODEL" in str(info.value)


def test_directory_without_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        ModelHost.load(str(tmp_path), device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_forcing_cuda_without_a_gpu_is_a_clear_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="AUTOREPLY_DEVICE"):
        ModelHost.load(str(tiny_model_dir), device="cuda")


def test_adapter_name_for_is_peft_safe() -> None:
    assert adapter_name_for("/x/adapters/support.v1.2/") == "support_v1_2"


def test_loads_a_gguf_file(tiny_gguf_file: Path, tiny_host: ModelHost) -> None:
    host = ModelHost.load(str(tiny_gguf_file), device="cpu")
    assert host.name == str(tiny_gguf_file)
    assert host.tokenizer.padding_side == "left"
    assert host.tokenizer.pad_token == "<|endoftext|>"
    text = "Where is my order? 😀"
    assert host.tokenizer.encode(text) == tiny_host.tokenizer.encode(text)
    assert torch.allclose(logits(host), logits(tiny_host), atol=1e-5)


# huggingface_hub reads HF_HUB_OFFLINE and HF_HOME when it is imported, so these checks run in
# a fresh interpreter with the environment set before any import.
_LOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    from bot.errors import ModelLoadError
    from bot.nlp.models import ModelHost
    for model in sys.argv[1:]:
        try:
            host = ModelHost.load(model, device="cpu")
        except ModelLoadError as exc:
            print("ERR", exc)
        else:
            print("OK", host.name, host.max_positions)
    """
)


def _load_in_subprocess(hf_home: Path, *models: str, **env: str) -> tuple[list[str], str]:
    """Load each model in a fresh interpreter; the printed lines and stderr come back."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))
    }
    clean.update(HF_HOME=str(hf_home), **env)
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, *models],
        env=clean,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines(), result.stderr


def _fake_hub_cache(hf_home: Path, repo_id: str, model_dir: Path) -> None:
    """The layout huggingface_hub writes after a download: snapshots/<commit> + refs/main."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in model_dir.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_offline_hub_ids_load_from_cache_or_fail_in_one_line(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    hf_home = tmp_path / "hf-home"
    _fake_hub_cache(hf_home, "tiny/gpt2", tiny_model_dir)
    (uncached, cached), _ = _load_in_subprocess(hf_home, "gpt2", "tiny/gpt2", HF_HUB_OFFLINE="1")
    assert uncached == (
        "ERR cannot load model 'gpt2': it is not in the local Hugging Face cache and the hub "
        "cannot be reached (offline). Set AUTOREPLY_MODEL to a local model directory "
        "(save_pretrained layout) or a .gguf file, or connect once to download it."
    )
    assert cached == "OK tiny/gpt2 1024"


def test_cached_hub_id_loads_without_touching_the_network(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    hf_home = tmp_path / "hf-home"
    _fake_hub_cache(hf_home, "tiny/gpt2", tiny_model_dir)
    # Not offline, but the hub is a closed port: any request would be retried and logged.
    (line,), stderr = _load_in_subprocess(hf_home, "tiny/gpt2", HF_ENDPOINT="http://127.0.0.1:9")
    assert line == "OK tiny/gpt2 1024"
    assert "Retrying" not in stderr
    assert "127.0.0.1:9" not in stderr


def test_unreachable_hub_gives_one_actionable_line(tmp_path: Path) -> None:
    # Port 9 (discard) is closed here; the reachability probe fails at once instead of letting
    # huggingface_hub retry with back-off for about a minute.
    (message,), _ = _load_in_subprocess(
        tmp_path / "hf-home", "microsoft/DialoGPT-small", HF_ENDPOINT="http://127.0.0.1:9"
    )
    assert message.startswith("ERR cannot load model 'microsoft/DialoGPT-small': it is not in")
    assert "cannot be reached" in message
    assert "AUTOREPLY_MODEL" in message


def test_compile_without_cuda_is_a_clear_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="AUTOREPLY_COMPILE=true needs a CUDA device"):
        ModelHost.load(str(tiny_model_dir), device="cpu", compile=True)


def test_adapter_missing_layer_weights_fails_clearly_and_leaves_the_model_intact(
    tiny_host: ModelHost, tiny_lora_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_lora_dir, broken)
    weights = load_file(str(broken / "adapter_model.safetensors"))
    weights.pop(next(iter(sorted(weights))))
    save_file(weights, str(broken / "adapter_model.safetensors"))
    before = logits(tiny_host)
    with pytest.raises(ModelLoadError, match="Check that AUTOREPLY_ADAPTER was trained"):
        tiny_host.load_adapter("broken", str(broken))
    assert tiny_host.adapter_names == ()
    assert torch.allclose(logits(tiny_host), before)
