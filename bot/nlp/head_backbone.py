"""The torch side of classifier heads: one shared backbone, many LoRA heads, last-token pooling.

A head is a peft LoRA adapter trained for sequence classification (task SEQ_CLS) plus its
`score` layer, which peft saves beside the LoRA weights (modules_to_save). Heads of different
tasks have different label counts, so peft's own `score` wrapper cannot hold them side by side
on one model; here each head's `score` is a plain `nn.Linear` kept next to the model, and the
LoRA weights are loaded as named adapters switched per call. The backbone is loaded once per
(base model, device) for the whole process: a GGUF checkpoint takes ~17 s to dequantize.

Several heads over the same texts share their trunk: heads trained with LoRA on the last
blocks only (`autoreply train classifier --lora-layers`, 8 of SmolLM2's 30 by default) compute the
same hidden states below their first LoRA block, so `logits_many` runs those blocks once per batch
and only the upper blocks once per head (intent + sentiment on SmolLM2: 38 block passes, not 60).

Pooling takes the hidden state of the last real token, found from the attention mask (never
from the pad token: SmolLM2's pad is its EOS, and GPT-2 uses EOS as pad too). Inputs are
right-padded, so in a causal model that token never attends to padding. Training
(training/train_classifier.py) and serving both pool through `pooled_logits`.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftConfig, PeftModel
from peft.utils import load_peft_weights, set_peft_model_state_dict
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from bot.errors import ModelLoadError
from bot.nlp.loading import first_line, load_pretrained, pick_device

log = logging.getLogger(__name__)

HEAD_MODULES = ("score", "classifier")  # what peft's SEQ_CLS saves as modules_to_save


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Right padding with an explicit pad token (GPT-2 has none: EOS stands in)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Right-padded ids and mask; a text longer than `max_length` tokens loses its end. An
    empty text becomes the one EOS token, so every row has a last real token to pool."""
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    ids = [row or [tokenizer.eos_token_id] for row in ids]
    batch = tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each row's last real token in a right-padded batch."""
    return attention_mask.sum(dim=1).long() - 1


def pooled_logits(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    head: torch.nn.Module | None = None,
) -> torch.Tensor:
    """Class logits from the last real token's hidden state.

    `model` is a transformers *ForSequenceClassification model (peft layers may be injected);
    `head` replaces its `score` layer (serving keeps one per task).
    """
    backbone = getattr(model, model.base_model_prefix)
    hidden = backbone(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False
    ).last_hidden_state
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    pooled = hidden[rows, last_token_index(attention_mask).to(hidden.device)]
    layer = head if head is not None else model.get_submodule("score")
    logits: torch.Tensor = layer(pooled)
    return logits


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only errors from logger `name` while the block runs."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def load_classification_model(
    base_model: str, num_labels: int, device: str = "cpu"
) -> tuple[PreTrainedModel, Any]:
    """The base LM as a sequence classifier (new `score` layer) and its tokenizer, loaded the
    way the service loads its model (hub id, directory or .gguf). fp32 on CPU; eval mode."""
    torch_device, dtype = pick_device(device)
    tokenizer = prepare_tokenizer(load_pretrained(base_model, AutoTokenizer.from_pretrained))
    with _quiet("transformers.modeling_utils"):  # "score.weight MISSING" is expected: it is new
        model = load_pretrained(
            base_model,
            AutoModelForSequenceClassification.from_pretrained,
            num_labels=num_labels,
            dtype=dtype,
            local_only_kwargs={"adapter_kwargs": {"local_files_only": True}},
        )
    if not isinstance(model, PreTrainedModel):  # pragma: no cover - guards the Any from HF
        raise ModelLoadError(f"cannot load {base_model!r} as a sequence classifier")
    model.config.pad_token_id = tokenizer.pad_token_id
    module: torch.nn.Module = model  # typed calls (transformers wraps `to`)
    module.to(torch_device)
    module.eval()  # training switches it to train mode itself
    return model, tokenizer


class Backbone:
    """One base model with any number of heads loaded as named adapters.

    Thread-safe: a lock serialises the adapter switch and the forward pass, so accounts
    served from several worker threads can share it.
    """

    def __init__(self, base_model: str, model: PreTrainedModel, tokenizer: Any) -> None:
        self.base_model = base_model
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self._peft: PeftModel | None = None
        self._heads: dict[str, torch.nn.Linear] = {}
        self._first_lora: dict[str, int] = {}  # head -> its lowest LoRA block (0: all blocks)
        self._blocks = _blocks(model)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, base_model: str, device: str = "auto") -> Backbone:
        model, tokenizer = load_classification_model(base_model, num_labels=1, device=device)
        return cls(base_model, model, tokenizer)

    @property
    def head_names(self) -> tuple[str, ...]:
        return tuple(self._heads)

    def add_head(self, name: str, path: Path) -> None:
        """Load the head saved in `path` under `name`; a name already loaded is kept."""
        with self._lock:
            if name in self._heads:
                return
            try:
                self._add(name, path)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ModelLoadError(
                    f"cannot load classifier head {name} from {path}: {first_line(exc)}. Check "
                    f"that it was trained on {self.base_model}, or roll it back with "
                    "`autoreply adapters rollback`"
                ) from exc

    def _add(self, name: str, path: Path) -> None:
        config = PeftConfig.from_pretrained(str(path))
        if not isinstance(config, LoraConfig):
            raise ValueError(f"{path} holds a {config.peft_type} adapter, not LoRA")
        weights = load_peft_weights(str(path), device=str(self.device))
        head = _pop_head(weights)
        # The head is ours; peft only switches the LoRA layers (no modules_to_save wrapper,
        # which would insist on one label count for every head).
        config.modules_to_save = None
        config.task_type = None
        config.inference_mode = True
        if self._peft is None:
            with warnings.catch_warnings():  # peft 0.21 asks transformers 5 a deprecated question
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
                self._peft = PeftModel(self.model, config, adapter_name=name)
        else:
            self._peft.add_adapter(name, config)
        result = set_peft_model_state_dict(self._peft, weights, adapter_name=name)
        unexpected = list(getattr(result, "unexpected_keys", ()))
        if unexpected:
            self._peft.delete_adapter(name)
            raise ValueError(f"weights that fit no layer: {unexpected[:3]}")
        peft_module: torch.nn.Module = self._peft
        peft_module.eval()
        layers = config.layers_to_transform
        if isinstance(layers, int):
            layers = [layers]
        self._first_lora[name] = min(layers) if layers else 0
        self._heads[name] = head.to(self.device, next(self.model.parameters()).dtype).eval()

    def logits(
        self, name: str, texts: Sequence[str], *, max_length: int, batch_size: int = 16
    ) -> torch.Tensor:
        """Logits of head `name` for `texts`, in order (rows of similar length batched)."""
        return self.logits_many([name], texts, max_length=max_length, batch_size=batch_size)[name]

    @torch.inference_mode()
    def logits_many(
        self, names: Sequence[str], texts: Sequence[str], *, max_length: int, batch_size: int = 16
    ) -> dict[str, torch.Tensor]:
        """Logits of each head in `names` for `texts`, in order; the blocks below every head's
        first LoRA block run once per batch for all of them."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = {name: [torch.empty(0)] * len(texts) for name in names}
        with self._lock:
            assert self._peft is not None, "add_head first"
            shared = min((self._first_lora[name] for name in names), default=0)
            alone = len(names) == 1 or self._blocks is None  # nothing to share
            trunk = [] if alone or self._blocks is None else list(self._blocks[:shared])
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                batch = encode(self.tokenizer, [texts[i] for i in chunk], max_length)
                ids = batch["input_ids"].to(self.device)
                mask = batch["attention_mask"].to(self.device)
                recorded: list[object] = []
                for k, name in enumerate(names):
                    self._peft.set_adapter(name)
                    with _record(trunk, recorded) if k == 0 else _replay(trunk, recorded):
                        logits = pooled_logits(self.model, ids, mask, self._heads[name]).float()
                    for row, i in enumerate(chunk):
                        out[name][i] = logits[row].cpu()
        return {
            name: torch.stack(rows) if rows else torch.empty(0, 0) for name, rows in out.items()
        }


def _blocks(model: PreTrainedModel) -> torch.nn.ModuleList | None:
    """The model's stack of transformer blocks (Llama's `layers`, GPT-2's `h`), or None."""
    count = getattr(model.config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    return None


@contextmanager
def _record(blocks: Sequence[torch.nn.Module], outputs: list[object]) -> Iterator[None]:
    """Keep each block's output, in order, while the block runs."""
    with ExitStack() as stack:
        for block in blocks:
            handle = block.register_forward_hook(lambda _m, _a, out: outputs.append(out))
            stack.callback(handle.remove)
        yield


@contextmanager
def _replay(blocks: Sequence[torch.nn.Module], outputs: Sequence[object]) -> Iterator[None]:
    """Each block returns its recorded output instead of computing it. Patching `forward`
    (not a hook) skips the work; whatever the model's loop does with a block's output (a
    tensor in Llama, a tuple in GPT-2) it gets the same object again."""
    for block, output in zip(blocks, outputs, strict=True):
        block.forward = lambda *_a, _out=output, **_k: _out
    try:
        yield
    finally:
        for block in blocks:
            del block.forward


def _pop_head(weights: dict[str, torch.Tensor]) -> torch.nn.Linear:
    """Take the saved `score` layer out of an adapter's weights, as a Linear."""
    found = {
        key.rsplit(".", 1)[1]: weights.pop(key)
        for key in list(weights)
        if any(f".{module}." in f".{key}" for module in HEAD_MODULES)
    }
    if "weight" not in found:
        raise ValueError(
            "the adapter has no score layer; train it with `autoreply train classifier`"
        )
    labels, hidden = found["weight"].shape
    head = torch.nn.Linear(hidden, labels, bias="bias" in found)
    head.load_state_dict(found)
    return head


_CACHE: dict[tuple[str, str], Backbone] = {}
_CACHE_LOCK = threading.Lock()


def shared_backbone(base_model: str, device: str = "auto") -> Backbone:
    """The process-wide backbone for `base_model` on `device`, loaded on first use."""
    key = (base_model, device)
    with _CACHE_LOCK:  # one load per key even when two accounts ask at once
        if key not in _CACHE:
            log.info("loading classifier backbone %s", base_model)
            _CACHE[key] = Backbone.load(base_model, device)
        return _CACHE[key]


def clear_backbones() -> None:
    """Forget every cached backbone (tests; a service frees them at exit anyway)."""
    with _CACHE_LOCK:
        _CACHE.clear()
