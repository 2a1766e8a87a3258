"""AUTOREPLY_QUANTIZE=int8 through the service's loader: one merged model per process."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bot.config import Settings
from bot.domain import Mode
from bot.errors import ConfigError, ModelLoadError
from bot.nlp.models import ModelHost
from bot.service import load_generator
from tests.fakes import account

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def logits(host: ModelHost, text: str = "where is my order?") -> torch.Tensor:
    ids = torch.tensor([host.tokenizer.encode(text)])
    with torch.no_grad():
        out: torch.Tensor = host.model(input_ids=ids).logits[0].float()
    return out


def settings(model: Path) -> Settings:
    return Settings(model=str(model), device="cpu", quantize="int8")


def test_int8_serves_the_base_model_and_says_so(tiny_model_dir: Path) -> None:
    fp32 = ModelHost.load(str(tiny_model_dir), device="cpu")
    generator, adapters = load_generator(settings(tiny_model_dir), [account("shop")])
    with generator:
        host = generator.host
        assert adapters == {} and host.quantized
        assert host.name == f"{tiny_model_dir} (int8)"
        quantized = [m for m in host.model.modules() if "quantized" in type(m).__module__]
        assert quantized  # dynamic int8 Linear layers are in place
        # Close to full precision: the same top token at nearly every position.
        agree = (logits(host).argmax(-1) == logits(fp32).argmax(-1)).float().mean()
        assert agree >= 0.8
        draft = generator.draft([], "where is my order?")
        assert draft.model == host.name and draft.text
        with pytest.raises(ModelLoadError, match="runs in int8"):
            host.load_adapter("other", str(tiny_model_dir))


def test_int8_merges_the_one_adapter_every_account_pins(
    tiny_model_dir: Path, tiny_lora_dir: Path
) -> None:
    with_adapter = ModelHost.load(str(tiny_model_dir), device="cpu", adapter=str(tiny_lora_dir))
    accounts = [replace(account(name), adapter=str(tiny_lora_dir)) for name in ("shop", "bank")]
    generator, adapters = load_generator(settings(tiny_model_dir), accounts)
    with generator:
        host = generator.host
        assert adapters == {}
        assert host.name.endswith(f"+{tiny_lora_dir.name} (int8)")
        agree = (logits(host).argmax(-1) == logits(with_adapter).argmax(-1)).float().mean()
        assert agree >= 0.8  # the adapter's effect is kept, merged into the weights


def test_int8_refuses_accounts_with_different_adapters(
    tiny_model_dir: Path, tiny_lora_dir: Path
) -> None:
    accounts = [replace(account("shop"), adapter=str(tiny_lora_dir)), account("bank")]
    with pytest.raises(ConfigError, match=r"serves one model per process.*shop.*bank"):
        load_generator(settings(tiny_model_dir), accounts)


def test_an_account_that_never_drafts_does_not_count(
    tiny_model_dir: Path, tiny_lora_dir: Path
) -> None:
    accounts = [
        replace(account("shop"), adapter=str(tiny_lora_dir)),
        account("archive", mode=Mode.OFF),
    ]
    generator, _ = load_generator(settings(tiny_model_dir), accounts)
    with generator:
        assert generator.host.quantized
