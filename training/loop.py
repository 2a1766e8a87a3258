"""A small training loop for a LoRA-wrapped causal LM: it knows nothing about replies.

Loss on labelled tokens only (the logits of prompt positions are never computed: the LM head
runs on the reply positions alone, which saves a large share of GPT-2's compute). Gradient
accumulation weighs every target token alike. Validation after every `eval_every` steps and
at each epoch's end; early stopping after `patience` evaluations without a better validation
loss, and the best weights are put back at the end. A checkpoint (trainable weights,
optimizer, scheduler, position, RNG) follows each evaluation, so a resumed run continues as if
it had never stopped.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bot.errors import InputError
from training.batches import Batch, Layout, collate, epoch_order, eval_order
from training.render import IGNORE_INDEX, Example

CHECKPOINT_FILE = "state.pt"
DEFAULT_EVAL_EVERY = 200  # optimizer steps, when an epoch is longer than that


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """Optimisation settings; saved with the adapter (`asdict`)."""

    epochs: int = 3
    lr: float = 2e-4
    batch_size: int = 8  # examples per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimizer steps
    patience: int = 2  # evaluations without improvement before stopping
    eval_every: int | None = None  # optimizer steps; None: each epoch, at most 200 apart
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    layout: Layout = "group"

    def __post_init__(self) -> None:
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "patience": self.patience,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1 (got {value}); pass a positive --{name}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0 (got {self.lr}); pass e.g. --lr 2e-4")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1; leave --max-steps out to train all epochs")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError("eval_every must be >= 1")


@dataclass(frozen=True, slots=True)
class StepInfo:
    """What a step hook sees after each optimizer step."""

    step: int
    epoch: int
    loss: float
    tokens_per_s: float


@dataclass(frozen=True, slots=True)
class LoopResult:
    steps: int
    train_loss: float  # mean over the last epoch's steps
    val_loss: float | None  # best validation loss (the weights kept)
    base_val_loss: float | None  # before training
    best_step: int
    tokens: int  # tokens trained on, prompts included
    target_tokens: int
    train_seconds: float
    tokens_per_s: float
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(slots=True)
class _State:
    """Everything a checkpoint restores."""

    step: int = 0
    epoch: int = 0
    window: int = 0  # next window (optimizer step) within the epoch
    best_val: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    base_val: float | None = None
    tokens: int = 0
    target_tokens: int = 0
    train_seconds: float = 0.0
    epoch_loss: list[float] = field(default_factory=lambda: [0.0, 0.0])  # sum, targets
    history: list[dict[str, float]] = field(default_factory=list)


class CheckpointError(InputError):
    """No checkpoint to resume from, or one written for other data or settings."""


class Trainer:
    """Trains the parameters of `model` that require grad on `train`, validating on `val`.

    `model` is a peft model (or any causal LM); `checkpoint_dir`, when given, receives
    `state.pt` after each evaluation. `on_step` is called after every optimizer step.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train: Sequence[Example],
        val: Sequence[Example],
        config: LoopConfig,
        *,
        device: str,
        pad_id: int,
        checkpoint_dir: Path | None = None,
        fingerprint: str = "",
        on_step: Callable[[StepInfo], None] | None = None,
        progress: bool = True,
    ) -> None:
        if not train:
            raise ValueError("no training examples; there is nothing to train on")
        self.model = model
        self.train = list(train)
        self.val = list(val)
        self.config = config
        self.device = device
        self.pad_id = pad_id
        self.checkpoint_dir = checkpoint_dir
        self.fingerprint = fingerprint
        self.on_step = on_step
        self.progress = progress
        self._params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not self._params:
            raise ValueError("the model has no trainable parameters; wrap it with a LoRA config")
        self._optimizer = torch.optim.AdamW(
            list(self._params.values()), lr=config.lr, weight_decay=config.weight_decay
        )
        steps = self.total_steps
        warmup = max(1, round(config.warmup_ratio * steps)) if config.warmup_ratio > 0 else 0
        self._scheduler = torch.optim.lr_scheduler.LambdaLR(
            self._optimizer, lambda s: _lr_factor(s, warmup, steps)
        )
        self._backbone, self._head = _split_head(model)
        self._best: dict[str, torch.Tensor] | None = None
        self.state = _State()

    # --- sizes ----------------------------------------------------------------------------

    @property
    def steps_per_epoch(self) -> int:
        batches = math.ceil(len(self.train) / self.config.batch_size)
        return math.ceil(batches / self.config.grad_accum)

    @property
    def total_steps(self) -> int:
        total = self.config.epochs * self.steps_per_epoch
        return min(total, self.config.max_steps) if self.config.max_steps else total

    @property
    def eval_every(self) -> int:
        return self.config.eval_every or min(self.steps_per_epoch, DEFAULT_EVAL_EVERY)

    # --- running --------------------------------------------------------------------------

    def fit(self, *, resume: bool = False) -> LoopResult:
        if resume:
            self._load_checkpoint()
        else:
            torch.manual_seed(self.config.seed)
            self.state.base_val = self.evaluate() if self.val else None
        state = self.state
        stopped_early = False
        with tqdm(
            total=self.total_steps,
            initial=state.step,
            unit="step",
            disable=None if self.progress else True,  # None: only on a terminal
            dynamic_ncols=True,
        ) as bar:
            while (
                not stopped_early
                and state.epoch < self.config.epochs
                and state.step < self.total_steps
            ):
                stopped_early = self._run_epoch(bar)
        if self._best is not None:
            self._assign(self._best)
        return self._result(stopped_early)

    def _run_epoch(self, bar: Any) -> bool:
        """The rest of the current epoch (from `state.window`); True when patience ran out."""
        state = self.state
        lengths = [len(e) for e in self.train]
        order = epoch_order(lengths, self.config.batch_size, self.config.seed, state.epoch)
        accum = self.config.grad_accum
        windows = [order[i : i + accum] for i in range(0, len(order), accum)]
        while state.window < len(windows) and state.step < self.total_steps:
            loss, tokens_per_s = self._train_window(windows[state.window])
            state.window += 1
            epoch_end = state.window == len(windows)
            if epoch_end:
                state.epoch, state.window = state.epoch + 1, 0
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:,.0f}")
            stop = False
            if epoch_end or state.step >= self.total_steps or state.step % self.eval_every == 0:
                stop = self._evaluate_and_save(loss)
            if self.on_step is not None:
                self.on_step(StepInfo(state.step, state.epoch, loss, tokens_per_s))
            if stop or epoch_end:  # the next epoch has an order of its own
                return stop
        return False

    def _train_window(self, window: list[list[int]]) -> tuple[float, float]:
        """One optimizer step over `window` micro-batches; (loss, tokens/s of the step)."""
        self.model.train()
        started = time.perf_counter()
        batches = [self._collate(self.train, indices) for indices in window]
        targets = max(1, sum(b.targets for b in batches))
        total = 0.0
        for batch in batches:
            loss = self._token_loss(batch.to(self.device))
            torch.autograd.backward(loss / targets)
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(list(self._params.values()), self.config.max_grad_norm)
        self._optimizer.step()
        self._scheduler.step()
        self._optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - started
        tokens = sum(b.tokens for b in batches)
        state = self.state
        state.step += 1
        state.tokens += tokens
        state.target_tokens += targets
        state.train_seconds += elapsed
        if state.window == 0:  # the epoch's first step
            state.epoch_loss = [0.0, 0.0]
        state.epoch_loss[0] += total
        state.epoch_loss[1] += targets
        return total / targets, tokens / elapsed if elapsed > 0 else 0.0

    def _collate(self, examples: Sequence[Example], indices: Sequence[int]) -> Batch:
        return collate([examples[i] for i in indices], self.config.layout, self.pad_id)

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.device == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _token_loss(self, batch: Batch) -> torch.Tensor:
        """Summed cross-entropy over the labelled tokens of `batch`."""
        shifted = batch.labels[:, 1:]
        keep = shifted != IGNORE_INDEX
        with self._autocast():
            inputs = {
                "input_ids": batch.input_ids,
                "attention_mask": batch.attention_mask,
                "position_ids": batch.position_ids,
                "use_cache": False,
            }
            if self._head is None:
                logits = self.model(**inputs).logits[:, :-1][keep]
            else:
                hidden = self._backbone(**inputs).last_hidden_state[:, :-1][keep]
                logits = self._head(hidden)
        return F.cross_entropy(logits.float(), shifted[keep], reduction="sum")

    @torch.no_grad()
    def evaluate(self, examples: Sequence[Example] | None = None) -> float:
        """Mean loss per target token on `examples` (default: the validation set)."""
        examples = self.val if examples is None else examples
        self.model.eval()
        total, targets = 0.0, 0
        for indices in eval_order([len(e) for e in examples], self.config.batch_size):
            batch = self._collate(examples, indices)
            total += float(self._token_loss(batch.to(self.device)))
            targets += batch.targets
        return total / max(1, targets)

    def _evaluate_and_save(self, train_loss: float) -> bool:
        """Validate, track the best weights, checkpoint; True when patience ran out."""
        state = self.state
        record = {"step": float(state.step), "train_loss": train_loss}
        stop = False
        if self.val:
            val = self.evaluate()
            record["val_loss"] = val
            if state.best_val is None or val < state.best_val:
                state.best_val, state.best_step, state.bad_evals = val, state.step, 0
                self._best = self._trainable()
            else:
                state.bad_evals += 1
                stop = state.bad_evals >= self.config.patience
        state.history.append(record)
        self._save_checkpoint()
        return stop

    # --- weights and checkpoints ------------------------------------------------------------

    def _trainable(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().to("cpu", copy=True) for n, p in self._params.items()}

    def _assign(self, weights: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, param in self._params.items():
                param.copy_(weights[name])

    def _save_checkpoint(self) -> None:
        if self.checkpoint_dir is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "fingerprint": self.fingerprint,
            "state": asdict(self.state),
            "trainable": self._trainable(),
            "best": self._best,
            "optimizer": self._optimizer.state_dict(),
            "scheduler": self._scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        path = self.checkpoint_dir / CHECKPOINT_FILE
        partial = path.with_suffix(".partial")
        torch.save(payload, partial)
        os.replace(partial, path)  # a crash while saving leaves the previous checkpoint whole

    def _load_checkpoint(self) -> None:
        path = (self.checkpoint_dir or Path(".")) / CHECKPOINT_FILE
        if self.checkpoint_dir is None or not path.is_file():
            raise CheckpointError(
                f"no checkpoint at {path} (a run stopped before its first evaluation leaves "
                "none); train afresh without --resume"
            )
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload["fingerprint"] != self.fingerprint:
            raise CheckpointError(
                f"the checkpoint in {self.checkpoint_dir} was written for other data or "
                "settings; resume with the data file it was trained on, or train afresh"
            )
        self.state = _State(**payload["state"])
        self._assign(payload["trainable"])
        self._best = payload["best"]
        self._optimizer.load_state_dict(payload["optimizer"])
        self._scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["rng"])
        if payload["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["cuda_rng"])

    def _result(self, stopped_early: bool) -> LoopResult:
        state = self.state
        loss_sum, targets = state.epoch_loss
        return LoopResult(
            steps=state.step,
            train_loss=loss_sum / targets if targets else math.nan,
            val_loss=state.best_val,
            base_val_loss=state.base_val,
            best_step=state.best_step if state.best_val is not None else state.step,
            tokens=state.tokens,
            target_tokens=state.target_tokens,
            train_seconds=state.train_seconds,
            tokens_per_s=state.tokens / state.train_seconds if state.train_seconds else 0.0,
            stopped_early=stopped_early,
            history=list(state.history),
        )


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then linear decay to zero at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _split_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """(transformer body, LM head) of a (peft-wrapped) causal LM, so the head can run on the
    labelled positions only; (model, None) when the model does not expose them."""
    unwrap = getattr(model, "get_base_model", None)  # peft's wrapper -> the causal LM
    lm: Any = unwrap() if callable(unwrap) else model
    body = getattr(lm, "base_model", None)
    get_head = getattr(lm, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if not isinstance(body, torch.nn.Module) or body is lm or not isinstance(head, torch.nn.Module):
        return model, None
    # Models that post-process logits (softcapping, scaling) must take the full forward.
    config = getattr(lm, "config", None)
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return model, None
    return body, head
