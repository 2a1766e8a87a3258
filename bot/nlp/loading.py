"""Find and load a base model's weights: resolve what AUTOREPLY_MODEL names (hub id, local
`save_pretrained` directory or `.gguf` file), pick the device, and call `from_pretrained`
cache-first, turning every way that can fail into one `ModelLoadError` line that says which
setting to change. `ModelHost.load` in `models.py` is the caller.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import huggingface_hub
import torch
from huggingface_hub.errors import (
    GatedRepoError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)

from bot.errors import ModelLoadError

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Source:
    """Where to read the weights from: what `from_pretrained` gets, and how."""

    ref: str  # hub id or directory
    gguf_file: str | None
    is_hub: bool


def _pick_device(device: str) -> tuple[str, torch.dtype]:
    if device not in ("auto", "cpu", "cuda"):
        raise ModelLoadError(
            f"unknown device {device!r}; set AUTOREPLY_DEVICE to auto, cpu or cuda"
        )
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise ModelLoadError(
            "AUTOREPLY_DEVICE=cuda but torch sees no CUDA device; set AUTOREPLY_DEVICE=auto or cpu"
        )
    if device == "cpu" or not cuda:
        return "cpu", torch.float32
    return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or model.endswith(".gguf")


def _resolve_source(model: str) -> _Source:
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _Source(ref=str(path.parent), gguf_file=path.name, is_hub=False)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"cannot load model {model!r}: {path} has no config.json, so it is not a "
                "save_pretrained directory. Set AUTOREPLY_MODEL to such a directory or a .gguf file"
            )
        return _Source(ref=str(path), gguf_file=None, is_hub=False)
    if _looks_like_path(model):
        raise ModelLoadError(
            f"cannot load model {model!r}: the path {path} does not exist. Set AUTOREPLY_MODEL "
            "to an existing model directory or .gguf file, or to a Hugging Face hub id"
        )
    return _Source(ref=model, gguf_file=None, is_hub=True)


def _load_pretrained(
    model: str,
    source: _Source,
    loader: Callable[..., _T],
    *,
    local_only_kwargs: dict[str, object] | None = None,
    **kwargs: object,
) -> _T:
    """Call an HF `from_pretrained`, cache-first for hub ids, mapping failures to one line."""
    if source.gguf_file is not None:
        kwargs["gguf_file"] = source.gguf_file
    offline = huggingface_hub.is_offline_mode()
    # A cached hub model loads without any network round trip (a service restart must not
    # depend on the hub); a partial cache falls through to a normal download below.
    if not source.is_hub or offline or _in_hub_cache(source.ref):
        try:
            return loader(source.ref, local_files_only=True, **(local_only_kwargs or {}), **kwargs)
        except (OSError, ValueError) as exc:
            if not source.is_hub or offline:
                raise _load_error(model, source, exc, offline=offline) from exc
    if not _hub_reachable():
        # huggingface_hub would retry for about a minute, printing a warning per try.
        raise ModelLoadError(
            f"cannot load model {model!r}: it is not in the local Hugging Face cache and the hub "
            "cannot be reached (no network). Set AUTOREPLY_MODEL to a local model directory "
            "(save_pretrained layout) or a .gguf file, or connect once to download it."
        )
    log.info("model %s is not (fully) in the local cache; fetching it from the hub", model)
    try:
        return loader(source.ref, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(model, source, exc, offline=offline) from exc


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick TCP probe of the hub endpoint (HF_ENDPOINT) before a download is attempted."""
    url = urlsplit(huggingface_hub.constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _in_hub_cache(repo_id: str) -> bool:
    try:
        return isinstance(huggingface_hub.try_to_load_from_cache(repo_id, "config.json"), str)
    except HFValidationError:  # not a valid repo id; the real load reports it
        return False


def _load_error(
    model: str, source: _Source, exc: BaseException, *, offline: bool
) -> ModelLoadError:
    """One actionable line. transformers wraps hub errors in OSError; the cause says which."""
    causes = _cause_chain(exc)
    if source.is_hub and any(isinstance(c, GatedRepoError) for c in causes):
        return ModelLoadError(
            f"cannot load model {model!r}: it is a gated repository. Accept its licence on "
            "huggingface.co and log in (hf auth login), or set AUTOREPLY_MODEL to a local copy"
        )
    not_found = (RepositoryNotFoundError, HFValidationError)
    if source.is_hub and any(isinstance(c, not_found) for c in causes):
        return ModelLoadError(
            f"cannot load model {model!r}: no such model on the Hugging Face hub. Check the id, "
            "or set AUTOREPLY_MODEL to a local model directory (save_pretrained layout) or a "
            ".gguf file"
        )
    if source.is_hub and (offline or any(isinstance(c, LocalEntryNotFoundError) for c in causes)):
        why = "offline" if offline else "unreachable"
        return ModelLoadError(
            f"cannot load model {model!r}: it is not in the local Hugging Face cache and the hub "
            f"cannot be reached ({why}). Set AUTOREPLY_MODEL to a local model directory "
            "(save_pretrained layout) or a .gguf file, or connect once to download it."
        )
    return ModelLoadError(
        f"cannot load model {model!r}: {first_line(exc)}. Set AUTOREPLY_MODEL to a causal LM "
        "directory (save_pretrained layout), a .gguf file or a hub id"
    )


def _cause_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".:") if text else type(exc).__name__


def load_pretrained(model: str, loader: Callable[..., _T], **kwargs: Any) -> _T:
    """Call `loader` (an HF `from_pretrained`: AutoTokenizer, AutoModelFor*) on what
    AUTOREPLY_MODEL-style `model` names (hub id, directory or .gguf), cache-first, with the same
    one-line errors as the service. Training and classifier heads load their backbone here."""
    return _load_pretrained(model, _resolve_source(model), loader, **kwargs)


def pick_device(device: str) -> tuple[str, torch.dtype]:
    """("cuda", bf16/fp16) when asked for or available under "auto", else ("cpu", fp32)."""
    return _pick_device(device)
