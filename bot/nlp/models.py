"""Load the base causal LM once and attach named LoRA adapters to it.

`ModelHost.load` builds the host from what `loading.py` resolves and loads (hub id, local
`save_pretrained` directory or `.gguf` file); adapter loading and switching live here, and every
way an adapter can fail to load becomes one `ModelLoadError` line that says which setting to
change. Generation lives in `generate.py`.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from peft import PeftConfig, PeftModel
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from peft.utils import load_peft_weights, set_peft_model_state_dict
from safetensors import SafetensorError
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    StoppingCriteriaList,
)
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from bot.errors import ModelLoadError, NotFoundError
from bot.nlp.loading import _load_pretrained, _pick_device, _resolve_source, first_line
from bot.nlp.lora_gather import GATHERED_LORA, AdapterStacks, StackCache, gathered_lora

log = logging.getLogger(__name__)

# peft's name for "no adapter" in a mixed batch (`generate(adapter_names=[...])`).
BASE_ADAPTER = "__base__"
DEFAULT_MAX_POSITIONS = 1024
DEFAULT_MAX_LOADED = 8


@dataclass(frozen=True, slots=True)
class PreparedAdapter:
    """An adapter read from disk but not yet in the model: what can be done off the lock."""

    name: str
    path: Path
    config: PeftConfig
    weights: dict[str, torch.Tensor]


class _Generates(Protocol):
    """What we call on a model; peft's `generate` is unannotated, so this types the seam."""

    def generate(self, *args: Any, **kwargs: Any) -> Any: ...


class ModelHost:
    """One base model and tokenizer in memory, with zero or more LoRA adapters on top.

    Build it with `ModelHost.load(...)`; the constructor only stores what it is given. After the
    first `load_adapter` the model is a `PeftModel`. One adapter (or none) is active for plain
    forward/generate calls; `adapter_names=` in `generate` can still pick one per batch row.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        model_id: str,
        device: str,
        max_loaded: int = DEFAULT_MAX_LOADED,
    ) -> None:
        self._model: PreTrainedModel | PeftModel = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self._active: str | None = None
        # Held around generate and every adapter change: peft keeps the active adapter as
        # model state, so a switch must never land in the middle of another call's generate.
        # Re-entrant so a caller (ReplyGenerator) can hold it across prompt building too.
        self.lock = threading.RLock()
        # Adapters known by name, loaded on demand and unloaded least-recently-used first.
        self.max_loaded = max_loaded
        self._paths: dict[str, Path] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._pins: Counter[str] = Counter()
        self._pin_lock = threading.Lock()  # never the generation lock: the event loop pins
        # Serialises adapter loads among themselves (not against generation): two requests
        # for one new adapter read it once.
        self._load_lock = threading.Lock()
        self._newline_tokens: torch.Tensor | None = None
        # CUDA: decode with a static KV cache, which transformers compiles (torch.compile) on
        # first use. Only for single-adapter calls: peft's per-row routing does not compile.
        self.static_cache = False
        self.quantized = False  # int8: one merged model, no adapters
        # Mixed-adapter calls: one gathered LoRA product per layer (lora_gather.py) rather
        # than peft's per-adapter loop; False keeps peft's `adapter_names=` path.
        self.gathered_lora = GATHERED_LORA
        self._lora_stacks = StackCache()  # cleared on every adapter change

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        model: str,
        *,
        device: str = "auto",
        adapter: str | None = None,
        max_loaded: int = DEFAULT_MAX_LOADED,
        compile: bool = False,
        name: str | None = None,
    ) -> ModelHost:
        """Load `model` (hub id, save_pretrained directory or .gguf file) on `device`.

        `adapter`, when given, is a peft adapter directory; it is loaded under its directory name
        and made active. `name` is what drafts record as the model (default: `model`).
        """
        torch_device, dtype = _pick_device(device)
        if compile and torch_device != "cuda":
            raise ModelLoadError(
                "AUTOREPLY_COMPILE=true needs a CUDA device (the static cache and torch.compile "
                "do not pay off on CPU); unset it, or set AUTOREPLY_DEVICE=cuda on a GPU machine"
            )
        source = _resolve_source(model)
        tokenizer = _load_pretrained(model, source, AutoTokenizer.from_pretrained)
        lm = _load_pretrained(
            model,
            source,
            AutoModelForCausalLM.from_pretrained,
            dtype=dtype,
            # transformers 5.x looks for an adapter_config.json on the hub without passing
            # local_files_only on: without this a cached model still goes online.
            local_only_kwargs={"adapter_kwargs": {"local_files_only": True}},
        )
        if not isinstance(lm, PreTrainedModel):  # pragma: no cover - guards the Any from HF
            raise ModelLoadError(f"cannot load model {model!r}: it is not a causal language model")
        _to_eval(lm, torch_device)
        # Batches are left-padded so every row's continuation starts at the same position;
        # GPT-2 has no pad token, and EOS is the conventional stand-in (masked out anyway).
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        host = cls(
            lm, tokenizer, model_id=name or model, device=torch_device, max_loaded=max_loaded
        )
        host.static_cache = compile
        log.info("loaded model %s on %s (%s)", model, torch_device, dtype)
        if adapter is not None:
            host.load_adapter(adapter_name_for(adapter), adapter)
        return host

    def load_adapter(self, name: str, path: str, *, activate: bool = True) -> None:
        """Load the peft adapter saved in directory `path` as `name` (and make it active).

        A name that is already loaded is replaced, so a retrained adapter can be swapped in. If
        loading fails the model is put back as it was, less any adapter under that name. The
        files are read before the generation lock is taken; only the switch holds it.
        """
        self.install_adapter(self.prepare_adapter(name, path), activate=activate)

    def prepare_adapter(self, name: str, path: str | Path) -> PreparedAdapter:
        """Read an adapter's config and weights from disk without touching the model, so it
        can run beside generation."""
        if self.quantized:
            raise ModelLoadError(
                f"cannot load LoRA adapter {name!r}: the model runs in int8 with its one adapter "
                "merged in (AUTOREPLY_QUANTIZE=int8). Restart without AUTOREPLY_QUANTIZE to "
                "serve several adapters, or pin this adapter and restart"
            )
        adapter_dir = Path(path).expanduser()
        # peft treats anything that is not a directory as a hub id and would go online.
        if not (adapter_dir / "adapter_config.json").is_file():
            what = "does not exist" if not adapter_dir.exists() else "has no adapter_config.json"
            raise ModelLoadError(
                f"cannot load LoRA adapter {name!r}: {adapter_dir} {what}. Set "
                "AUTOREPLY_ADAPTER to a directory written by peft's save_pretrained, or unset it "
                "to use the base model"
            )
        try:
            peft_type = PeftConfig._get_peft_type(str(adapter_dir))
            config = PEFT_TYPE_TO_CONFIG_MAPPING[peft_type].from_pretrained(str(adapter_dir))
            weights = load_peft_weights(str(adapter_dir), device=self.device)
        except (OSError, ValueError, KeyError, SafetensorError) as exc:
            raise ModelLoadError(
                f"cannot load LoRA adapter {name!r} from {adapter_dir}: {first_line(exc)}. "
                "Save it again with peft's save_pretrained"
            ) from exc
        config.inference_mode = True
        return PreparedAdapter(name, adapter_dir, config, weights)

    def install_adapter(self, prepared: PreparedAdapter, *, activate: bool = False) -> None:
        """Put a prepared adapter into the model under the generation lock (a quick swap:
        the weights are already in memory), then unload the least recently used ones over
        `max_loaded`."""
        started = time.perf_counter()
        with self.lock:
            self._install_locked(prepared)
            self._paths[prepared.name] = prepared.path
            self._touch(prepared.name)
            if activate:
                self.set_active_adapter(prepared.name)
            else:
                self.set_active_adapter(self._active)  # new layers start enabled
            self._evict_over_cap(keep=prepared.name)
        log.info(
            "loaded adapter %s from %s (model locked %.0f ms)",
            prepared.name,
            prepared.path,
            (time.perf_counter() - started) * 1000,
        )

    def _install_locked(self, prepared: PreparedAdapter) -> None:
        name = prepared.name
        self._lora_stacks.clear()  # stacks copy the adapters' weights
        if name in self.adapter_names:
            self._drop_adapter(name)
        try:
            if isinstance(self._model, PeftModel):
                self._model.add_adapter(name, prepared.config, low_cpu_mem_usage=True)
            else:
                self._model = PeftModel(
                    self._model, prepared.config, adapter_name=name, low_cpu_mem_usage=True
                )
            assert isinstance(self._model, PeftModel)
            set_peft_model_state_dict(
                self._model, prepared.weights, adapter_name=name, low_cpu_mem_usage=True
            )
            # Layers the file has no weights for stay on the meta device and fail here.
            _to_eval(self._model, self.device)
        # peft raises ValueError for target modules the base lacks and RuntimeError for
        # weight shapes that do not match (or missing ones): all mean "adapter trained for
        # another model".
        except (OSError, ValueError, RuntimeError) as exc:
            self._undo_failed_load(name)
            raise ModelLoadError(
                f"cannot load LoRA adapter {name!r} from {prepared.path} onto "
                f"{self.model_id!r}: {first_line(exc)}. Check that AUTOREPLY_ADAPTER was trained "
                "for this model"
            ) from exc

    # --- int8 ---------------------------------------------------------------------------------

    def quantize_int8(self, calibration_texts: Sequence[str]) -> None:
        """Serve one model in dynamic int8 (CPU): the base with its one loaded adapter merged
        in, if any. Afterwards adapters can no longer be loaded (see bot/nlp/quantize.py)."""
        from bot.nlp.quantize import calibration_from_texts, merge_for_int8, quantize_int8

        with self.lock:
            merged = next(iter(self.adapter_names), None)
            if isinstance(self._model, PeftModel):
                _tuner(self._model).enable_adapter_layers()  # merge what requests would use
            model = merge_for_int8(self._model)
            calibration = calibration_from_texts(self.tokenizer, calibration_texts)
            quantize_int8(model, calibration=calibration)
            self._model = model
            self._active = None
            self._lora_stacks.clear()
            self._paths.clear()
            self._recent.clear()
            self.quantized = True
            # Drafts record what actually answered them.
            merged_in = f"+{merged}" if merged else ""
            self.model_id = f"{self.model_id}{merged_in} (int8)"

    # --- the adapter cache -------------------------------------------------------------------

    def register_adapter(self, name: str, path: str | Path) -> None:
        """Make `name` loadable on demand from `path` (nothing is read yet)."""
        self._paths[name] = Path(path).expanduser()

    def ensure_loaded(self, name: str) -> None:
        """Load a registered adapter if it is not in memory. The files are read off the
        generation lock, so drafting for other adapters goes on meanwhile."""
        with self._load_lock:
            if name in self.adapter_names:
                with self.lock:
                    self._touch(name)
                    self._evict_over_cap(keep=name)  # back to the cap once pins are gone
                return
            path = self._paths.get(name)
            if path is None:
                raise self._not_found(name)
            self.install_adapter(self.prepare_adapter(name, path))

    def pin(self, names: Sequence[str | None]) -> list[str]:
        """Keep these adapters loaded until `unpin` (a request in flight): eviction skips
        them. Quick and lock-free for generation, so the event loop may call it; returns the
        names that need `ensure_loaded` (registered, not in memory)."""
        wanted = [n for n in dict.fromkeys(names) if n is not None and n != BASE_ADAPTER]
        with self._pin_lock:
            self._pins.update(wanted)
        return [name for name in wanted if name not in self.adapter_names]

    def unpin(self, names: Sequence[str | None]) -> None:
        wanted = [n for n in dict.fromkeys(names) if n is not None and n != BASE_ADAPTER]
        with self._pin_lock:
            self._pins.subtract(wanted)
            self._pins += Counter()  # drop zero counts

    @contextmanager
    def using(self, names: Sequence[str | None]) -> Iterator[None]:
        """`pin` + load what is missing, for the block."""
        try:
            for name in self.pin(names):
                self.ensure_loaded(name)
            yield
        finally:
            self.unpin(names)

    def is_loaded(self, name: str | None) -> bool:
        return name is None or name == BASE_ADAPTER or name in self.adapter_names

    def _touch(self, name: str) -> None:
        self._recent[name] = None
        self._recent.move_to_end(name)

    def _evict_over_cap(self, keep: str) -> None:
        loaded = [name for name in self._recent if name in self.adapter_names]
        excess = len(loaded) - self.max_loaded
        for name in loaded:  # least recent first
            if excess <= 0:
                break
            with self._pin_lock:
                pinned = self._pins[name] > 0
            if name in (self._active, keep) or pinned:
                continue
            self._drop_adapter(name)
            self._recent.pop(name, None)
            excess -= 1
            log.info("unloaded adapter %s (least recently used; cap %d)", name, self.max_loaded)

    def _drop_adapter(self, name: str) -> None:
        self._lora_stacks.clear()
        if isinstance(self._model, PeftModel) and name in self._model.peft_config:
            if len(self._model.peft_config) == 1:
                # A PeftModel without adapters cannot run forward: go back to the bare model.
                self._model = _unwrap(self._model)
            else:
                self._model.delete_adapter(name)
        if self._active == name:
            self.set_active_adapter(None)

    def _undo_failed_load(self, name: str) -> None:
        if isinstance(self._model, PeftModel):
            self._drop_adapter(name)
        else:
            # PeftModel.from_pretrained injects LoRA layers into the base model in place
            # before it loads their weights; a failed load would leave random layers behind.
            _strip_tuner_layers(self._model)

    # --- adapters --------------------------------------------------------------------------

    @property
    def adapter_names(self) -> tuple[str, ...]:
        if not isinstance(self._model, PeftModel):
            return ()
        return tuple(self._model.peft_config)

    @property
    def active_adapter(self) -> str | None:
        return self._active

    def set_active_adapter(self, name: str | None) -> None:
        """Make `name` the adapter used by plain calls; None runs the base model."""
        with self.lock:
            if name is None:
                if isinstance(self._model, PeftModel):
                    _tuner(self._model).disable_adapter_layers()
                self._active = None
                return
            peft_model = self._require_peft(name)
            peft_model.set_adapter(name, inference_mode=True)
            _tuner(peft_model).enable_adapter_layers()
            self._active = name

    def resolve_adapter(self, name: str | None) -> str | None:
        """The adapter a request runs with: None means the active one, BASE_ADAPTER none."""
        if name is None:
            return self._active
        if name == BASE_ADAPTER:
            return None
        if name not in self.adapter_names and name in self._paths:
            # Normally loaded beforehand off the lock (`pin` + `ensure_loaded`); this is the
            # slow safety net. Not through `ensure_loaded`: its load lock may be held by a
            # loader waiting for the generation lock this thread holds.
            with self.lock:
                self.install_adapter(self.prepare_adapter(name, self._paths[name]))
        self._require_peft(name)
        self._touch(name)
        return name

    @contextmanager
    def adapter_layers_enabled(self) -> Iterator[None]:
        """Enable LoRA layers for the block: peft ignores `adapter_names` while they are off."""
        if not isinstance(self._model, PeftModel) or self._active is not None:
            yield
            return
        tuner = _tuner(self._model)
        tuner.enable_adapter_layers()
        try:
            yield
        finally:
            tuner.disable_adapter_layers()

    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        config: GenerationConfig,
        adapters: Sequence[str | None],
        stopping: StoppingCriteriaList | None = None,
        output_logits: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """`model.generate` with one adapter per row (None: base model): the sequences, and
        with `output_logits` the raw logits of every step.

        Rows that all use the active adapter go through a plain call; otherwise each row goes
        through its own adapter: by gathered LoRA forwards (`gathered_lora`), or where those do
        not cover the model's layers by peft's `adapter_names=`, with LoRA layers switched on.
        """
        kwargs: dict[str, Any] = {"generation_config": config}
        if stopping is not None:
            kwargs["stopping_criteria"] = stopping
        if output_logits:
            # On a copy of the config: transformers warns about such flags passed beside it.
            config = copy.deepcopy(config)
            config.output_logits = True
            config.return_dict_in_generate = True
            kwargs["generation_config"] = config
        mixed = any(adapter != self._active for adapter in adapters)
        names = [adapter or BASE_ADAPTER for adapter in adapters]
        if not mixed and self.static_cache:
            config = copy.deepcopy(kwargs["generation_config"])
            config.cache_implementation = "static"
            kwargs["generation_config"] = config
        with self.lock:
            model = cast(_Generates, self._model)
            stacks = self._gathered_stacks(names) if mixed else None
            routing: AbstractContextManager[None] = nullcontext()
            if stacks is not None:
                routing = gathered_lora(stacks, names)
            elif mixed:
                kwargs["adapter_names"] = names
                routing = self.adapter_layers_enabled()
            with routing:
                output = model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, **kwargs
                )
        if isinstance(output, torch.Tensor):
            return output, None
        sequences, logits = getattr(output, "sequences", None), getattr(output, "logits", None)
        if not isinstance(sequences, torch.Tensor):  # pragma: no cover - guards the Any from HF
            raise TypeError(f"generate returned {type(output).__name__} without sequences")
        return sequences, tuple(logits) if logits is not None else None

    def _gathered_stacks(self, names: Sequence[str]) -> AdapterStacks | None:
        """The LoRA stacks for a mixed call, or None for peft's path (switched off, or a layer
        the gathered forward does not handle). Under the generation lock."""
        if not self.gathered_lora or not isinstance(self._model, PeftModel):
            return None
        return self._lora_stacks.stacks_for(self._model, names)

    def newline_tokens(self) -> torch.Tensor:
        """A bool per token id: does it decode to text holding a line break (computed once)."""
        if self._newline_tokens is None:
            tokenizer = self.tokenizer
            size = max(len(tokenizer), int(getattr(self._base_model().config, "vocab_size", 0)))
            texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
            mask = torch.zeros(size, dtype=torch.bool)
            mask[: len(texts)] = torch.tensor(["\n" in text for text in texts])
            self._newline_tokens = mask.to(self.device)
        return self._newline_tokens

    def _require_peft(self, name: str) -> PeftModel:
        if not isinstance(self._model, PeftModel) or name not in self._model.peft_config:
            raise self._not_found(name)
        return self._model

    def _not_found(self, name: str) -> NotFoundError:
        loaded = ", ".join(self.adapter_names) or "none"
        return NotFoundError(
            f"adapter {name!r} is not loaded (loaded: {loaded}); load it with "
            "ModelHost.load_adapter or set AUTOREPLY_ADAPTER"
        )

    # --- facts ---------------------------------------------------------------------------

    @property
    def model(self) -> PreTrainedModel | PeftModel:
        return self._model

    @property
    def dtype(self) -> torch.dtype:
        return next(self._model.parameters()).dtype

    @property
    def name(self) -> str:
        """Version string stored with every draft: the model plus the active adapter."""
        return self.name_for(self._active)

    def name_for(self, adapter: str | None) -> str:
        return self.model_id if adapter is None else f"{self.model_id}+{adapter}"

    @property
    def max_positions(self) -> int:
        config = self._base_model().config
        for attr in ("n_positions", "max_position_embeddings"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return DEFAULT_MAX_POSITIONS

    @property
    def eos_token_id(self) -> int:
        token_id = self.tokenizer.eos_token_id
        if not isinstance(token_id, int):
            raise ModelLoadError(
                f"the tokenizer of {self.model_id!r} has no end-of-sequence token; "
                "use a causal LM whose tokenizer defines eos_token"
            )
        return token_id

    @property
    def pad_token_id(self) -> int:
        """The id left padding uses (masked out, so its value does not matter): the
        tokenizer's pad token, else EOS."""
        token_id = self.tokenizer.pad_token_id
        return token_id if isinstance(token_id, int) else self.eos_token_id

    def _base_model(self) -> PreTrainedModel:
        if isinstance(self._model, PeftModel):
            base = self._model.get_base_model()
            assert isinstance(base, PreTrainedModel)
            return base
        return self._model


def _to_eval(module: torch.nn.Module, device: str) -> None:
    module.to(device)
    module.eval()


def _strip_tuner_layers(model: torch.nn.Module) -> None:
    """Swap every peft wrapper layer back for the layer it wraps (peft's `unload` without
    needing the PeftModel, which a failed `from_pretrained` never hands back)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
    # peft copies its config dict onto the wrapped model; a stale one confuses the next wrap.
    if "peft_config" in vars(model):
        delattr(model, "peft_config")


def _unwrap(model: PeftModel) -> PreTrainedModel:
    base = model.get_base_model()
    assert isinstance(base, PreTrainedModel)
    _strip_tuner_layers(base)
    return base


def _tuner(model: PeftModel) -> BaseTuner:
    tuner = model.base_model
    if not isinstance(tuner, BaseTuner):  # pragma: no cover - prompt-learning methods
        raise ModelLoadError("only LoRA-style adapters are supported; retrain with a LoRA config")
    return tuner


def adapter_name_for(path: str) -> str:
    """A peft-safe adapter name from a directory: module-dict keys cannot contain dots."""
    stem = Path(path).expanduser().resolve().name
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem) or "adapter"
