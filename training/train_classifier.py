"""Train a classifier head: LoRA for sequence classification on the service's base model.

Stages: labelled rows (training/classifier_data.py) -> stratified train/validation split ->
LoRA (SEQ_CLS; peft saves the new `score` layer with the adapter) trained with a class-balanced
loss, evaluated a few times per epoch, stopped early when the validation loss stops falling,
and rolled back to its best evaluation -> temperature fitted on the validation split
(training/calibration.py) -> saved with labels.json (id2label) and head.json (task,
temperature, max length, base model), and registered as a candidate of kind = task.

`autoreply train classifier` (bot/cli_train.py) calls `train_classifier`; `train_head` and
`save_head` are the model-only stages, which tests call on a tiny model.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from peft import PeftModel, TaskType, get_peft_model
from tqdm import tqdm
from transformers import PreTrainedModel

from bot.nlp.head_backbone import encode, load_classification_model, pooled_logits
from bot.nlp.heads import HEAD_FILE, LABELS_FILE
from training.calibration import (
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    nll,
)
from training.classifier_data import Example, class_weights
from training.lora import lora_config

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.storage.adapters import AdapterVersion
    from bot.storage.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HeadConfig:
    """How a head is trained. Saved with the adapter (registry `config`)."""

    task: str
    epochs: int = 3
    lr: float = 1e-3  # few steps on small data: 3e-4 left the airline intent head underfit
    max_length: int = 64
    seed: int = 0
    batch_size: int = 16
    val_fraction: float = 0.15
    patience: int = 3  # evaluations without a better validation loss before stopping
    evals_per_epoch: int = 2
    lora_r: int = 8
    lora_alpha: int = 16
    # LoRA on the last `lora_layers` blocks only (0: every block). The blocks below stay
    # frozen and untouched, so backpropagation stops at the first adapted block: on SmolLM2
    # (30 blocks) 8 make a training step about twice as fast as all 30.
    lora_layers: int = 8

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.max_length < 2 or self.lr <= 0:
            raise ValueError(
                f"need epochs >= 1, batch_size >= 1, max_length >= 2 and lr > 0; got {self}"
            )
        if self.lora_layers < 0:
            raise ValueError(f"lora_layers must be >= 0 (0: every block), got {self.lora_layers}")


@dataclass
class TrainedHead:
    """A trained head still in memory, with its labels, temperature and validation scores."""

    model: PeftModel
    tokenizer: Any
    labels: tuple[str, ...]
    temperature: float
    metrics: dict[str, Any] = field(default_factory=dict)


def _rows(examples: Sequence[Example], labels: Sequence[str]) -> tuple[list[str], list[int]]:
    index = {label: i for i, label in enumerate(labels)}
    return [e.text for e in examples], [index[e.label] for e in examples]


def _classifier(model: PeftModel) -> PreTrainedModel:
    """The transformers model inside peft's wrapper (LoRA layers injected)."""
    inner = model.get_base_model()
    assert isinstance(inner, PreTrainedModel)
    return inner


def _forward(model: PeftModel, tokenizer: Any, texts: list[str], max_length: int) -> torch.Tensor:
    batch = encode(tokenizer, texts, max_length)
    device = next(model.parameters()).device
    return pooled_logits(
        _classifier(model), batch["input_ids"].to(device), batch["attention_mask"].to(device)
    )


def predict_logits(
    model: PeftModel, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 16
) -> torch.Tensor:
    """Logits for `texts` in order (eval mode; rows of similar length batched together)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), int(_classifier(model).config.num_labels or 0))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            logits = _forward(model, tokenizer, [texts[i] for i in chunk], max_length)
            out[chunk] = logits.float().cpu()
    model.train(was_training)
    return out


def build_model(
    base_model: str, labels: Sequence[str], config: HeadConfig, device: str = "auto"
) -> tuple[PeftModel, Any]:
    """The base LM as a sequence classifier with a fresh LoRA adapter and `score` layer."""
    model, tokenizer = load_classification_model(base_model, len(labels), device)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    lora = lora_config(model, TaskType.SEQ_CLS, r=config.lora_r, alpha=config.lora_alpha)
    blocks = int(model.config.num_hidden_layers)
    if 0 < config.lora_layers < blocks:
        lora.layers_to_transform = list(range(blocks - config.lora_layers, blocks))
    with warnings.catch_warnings():  # peft 0.21 asks transformers 5 a deprecated question
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        peft_model = get_peft_model(model, lora)
    assert isinstance(peft_model, PeftModel)
    return peft_model, tokenizer


class _Stopper:
    """Keeps the trainable weights (and validation logits) of the best evaluation; says when
    patience ran out."""

    def __init__(self, model: PeftModel, patience: int) -> None:
        self.model = model
        self.patience = patience
        self.best = math.inf
        self.best_step = 0
        self.best_logits = torch.empty(0)
        self.bad = 0
        self._state: dict[str, torch.Tensor] = {}

    def update(self, val_loss: float, logits: torch.Tensor, step: int) -> bool:
        """Record an evaluation; True when training should stop."""
        if val_loss < self.best - 1e-4:
            self.best, self.best_step, self.best_logits, self.bad = val_loss, step, logits, 0
            self._state = {
                n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad
            }
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self) -> None:
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                if name in self._state:
                    param.copy_(self._state[name])


def train_head(
    base_model: str,
    train: Sequence[Example],
    val: Sequence[Example],
    labels: Sequence[str],
    config: HeadConfig,
    *,
    device: str = "auto",
    progress: bool = True,
) -> TrainedHead:
    """Train, stop early on the validation loss, fit the temperature; scores in `metrics`."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model, tokenizer = build_model(base_model, labels, config, device)
    weights = torch.tensor(class_weights(train, labels), device=next(model.parameters()).device)
    texts, gold = _rows(train, labels)
    val_texts, val_gold = _rows(val, labels)
    val_target = torch.tensor(val_gold)

    def evaluate() -> tuple[float, torch.Tensor]:
        logits = predict_logits(model, tokenizer, val_texts, config.max_length)
        return float(F.cross_entropy(logits, val_target, weight=weights.cpu()).item()), logits

    per_epoch = math.ceil(len(texts) / config.batch_size)
    total = per_epoch * config.epochs
    eval_every = max(1, per_epoch // config.evals_per_epoch)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / total)
    )
    stopper = _Stopper(model, config.patience)
    initial, logits = evaluate()
    stopper.update(initial, logits, 0)
    losses: list[float] = []
    step, stop, started = 0, False, time.monotonic()
    model.train()
    bar = tqdm(total=total, desc=f"{config.task} head", unit="step", disable=not progress)
    for _ in range(config.epochs):
        order = list(range(len(texts)))
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            chunk = order[start : start + config.batch_size]
            logits = _forward(model, tokenizer, [texts[i] for i in chunk], config.max_length)
            target = torch.tensor([gold[i] for i in chunk], device=logits.device)
            loss = F.cross_entropy(logits, target, weight=weights)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.item()))
            step += 1
            bar.update(1)
            if step % eval_every == 0 or step == total:
                current, logits = evaluate()
                bar.set_postfix(loss=f"{losses[-1]:.3f}", val=f"{current:.3f}")
                if stopper.update(current, logits, step):
                    stop = True
                    break
        if stop:
            break
    bar.close()
    stopper.restore()
    model.eval()
    head = TrainedHead(model, tokenizer, tuple(labels), 1.0)
    head.metrics = _scores(head, stopper.best_logits, val_target)
    head.metrics.update(
        val_loss=stopper.best,
        val_loss_initial=initial,
        train_loss_first=_mean(losses[:eval_every]),
        train_loss_last=_mean(losses[-eval_every:]),
        best_step=stopper.best_step,
        steps=step,
        stopped_early=stop,
        n_train=len(texts),
        n_val=len(val_texts),
        train_seconds=round(time.monotonic() - started, 1),
    )
    return head


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _scores(head: TrainedHead, logits: torch.Tensor, gold: torch.Tensor) -> dict[str, Any]:
    """Fit T on the validation logits (sets head.temperature); metrics, NLL and ECE before and
    after. Note that T is fitted and judged on the same rows, so ece_calibrated flatters it."""
    head.temperature = fit_temperature(logits, gold)
    metrics = classification_metrics(logits.argmax(1).tolist(), gold.tolist(), head.labels)
    return {
        **metrics,
        "temperature": head.temperature,
        "val_nll": nll(logits, gold),
        "val_nll_calibrated": nll(logits, gold, head.temperature),
        "ece": expected_calibration_error(torch.softmax(logits, 1), gold),
        "ece_calibrated": expected_calibration_error(
            torch.softmax(logits / head.temperature, 1), gold
        ),
    }


def save_head(head: TrainedHead, path: Path, *, base_model: str, config: HeadConfig) -> Path:
    """peft's adapter files plus labels.json (id2label) and head.json, in `path`."""
    path.mkdir(parents=True, exist_ok=True)
    # The embeddings are never trained here; saying so also skips peft's look for a config
    # file beside the base weights (a .gguf directory has none, and it warns).
    head.model.save_pretrained(str(path), save_embedding_layers=False)
    id2label = {str(i): label for i, label in enumerate(head.labels)}
    (path / LABELS_FILE).write_text(json.dumps(id2label, indent=2) + "\n", encoding="utf-8")
    meta = {
        "task": config.task,
        "temperature": head.temperature,
        "max_length": config.max_length,
        "base_model": base_model,
    }
    (path / HEAD_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class TrainResult:
    path: Path
    metrics: dict[str, Any]
    version: AdapterVersion | None  # None when saved to --out instead of the registry


def train_classifier(
    settings: Settings,
    config: HeadConfig,
    *,
    account: str | None = None,
    data: Path | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """The whole `autoreply train classifier`: data, training, saving, registering.

    Without `data` the account's exported labels-<task>.jsonl is used. With `out` the head is
    written there and not registered; otherwise it goes to the account's next registry slot
    as a candidate (promote it with `autoreply adapters promote`).
    """
    from bot.accounts import load_accounts
    from bot.nlp.embedded import choose_model
    from training.classifier_data import data_hash, label_set, read_examples, stratified_split

    target = load_accounts(settings).get(account)
    if settings.cpu_threads is not None:
        torch.set_num_threads(settings.cpu_threads)
    # The registry (or the export) needs the database; an unknown account fails up front.
    db = _registry_db(settings, target.name) if out is None or data is None else None
    try:
        examples = read_examples(data) if data else _exported(settings, db, target.name, config)
        labels = label_set(config.task, examples, target.intent_labels, f"account {target.name}")
        train, val = stratified_split(examples, config.val_fraction, config.seed)
        base = choose_model(settings).ref
        log.info(
            "training a %s head on %s: %d train, %d validation rows",
            config.task,
            base,
            len(train),
            len(val),
        )
        head = train_head(
            base, train, val, labels, config, device=settings.device, progress=progress
        )
        if out is not None:  # unregistered: the scores go beside the weights instead
            path = save_head(head, out, base_model=base, config=config)
            (path / "metrics.json").write_text(json.dumps(head.metrics, indent=2) + "\n")
            return TrainResult(path, head.metrics, None)
        assert db is not None
        return _register(db, settings, target.name, head, base, config, data_hash(examples))
    finally:
        if db is not None:
            db.dispose()


def _registry_db(settings: Settings, account: str) -> Database:
    """The migrated database, once `account` is known to be in it."""
    from bot.storage import migrate
    from bot.storage.db import Database
    from training import registry

    migrate.ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    try:
        registry.versions(db, account)  # RegistryError naming the fix for an unknown account
    except BaseException:
        db.dispose()
        raise
    return db


def _register(
    db: Database,
    settings: Settings,
    account: str,
    head: TrainedHead,
    base: str,
    config: HeadConfig,
    digest: str,
) -> TrainResult:
    from training import registry

    parent = registry.active(db, account, config.task)
    slot = registry.reserve(db, settings.adapters_dir, account, config.task)
    save_head(head, slot.path, base_model=base, config=config)
    version = registry.register(
        db,
        slot,
        base_model=base,
        data_hash=digest,
        config={**asdict(config), "labels": list(head.labels), "temperature": head.temperature},
        metrics=head.metrics,
        parent=parent.name if parent else None,
    )
    return TrainResult(slot.path, head.metrics, version)


def _exported(
    settings: Settings, db: Database | None, account: str, config: HeadConfig
) -> list[Example]:
    """The account's labelled messages, exported now into a temporary directory, without
    the rows the evaluation gate holds out (by text hash), so `autoreply adapters eval`
    never scores a head on what it learned."""
    import tempfile

    from bot.errors import InputError
    from training.classifier_data import read_examples
    from training.evaluate import is_heldout
    from training.export import export_account

    assert db is not None  # train_classifier opens it when there is no --data
    name = f"labels-{config.task}.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        result = export_account(db, settings, account, Path(tmp))
        if not result.counts.get(name) or name not in result.files:
            raise InputError(
                f"the export of {account} has no {config.task} labels yet; correct some "
                "analyses in the queue first, or pass --data FILE"
            )
        return [e for e in read_examples(result.files[name]) if not is_heldout(e.text)]
