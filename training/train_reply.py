"""Train an account's reply adapter: LoRA on the causal LM, loss on the reply tokens only.

Stages: exported conversations (training/rows.py) -> examples rendered as the drafter
prompts (training/render.py) -> train/validation split by conversation, leaving out the eval
gate's held-out share -> the loop (training/loop.py) -> `save_pretrained` into the next
version directory -> registered as a candidate. Nothing is registered before the adapter is
saved whole, so a crash or Ctrl-C leaves the registry (and the active adapter) as it was; the
version directory keeps a checkpoint that `--resume` continues from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from peft import PeftModel, TaskType, get_peft_model
from transformers import AutoConfig
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from bot.domain import ReplyStyle
from bot.errors import ConfigError, InputError
from bot.nlp.loading import load_pretrained
from training import registry
from training.base import BaseModel, load_base, load_tokenizer
from training.loop import LoopConfig, LoopResult, StepInfo, Trainer
from training.lora import lora_config
from training.render import Example, Renderer, conversation_examples, renderer_for
from training.rows import Conversation, file_hash, read_conversations

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.storage.db import Database
    from training.registry import AdapterVersion, Slot

log = logging.getLogger(__name__)

KIND = "reply"
CHECKPOINT_DIR = "checkpoint"
RUN_FILE = "run.json"  # beside the checkpoint: what a resumed run must train on


@dataclass(frozen=True, slots=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: tuple[str, ...] | None = None  # None: the architecture's preset (training/lora.py)


@dataclass(frozen=True, slots=True)
class ReplyTrainConfig:
    """Everything that decides the adapter, saved with it in the registry."""

    loop: LoopConfig = field(default_factory=LoopConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    val_fraction: float = 0.1  # of conversations, for early stopping

    def __post_init__(self) -> None:
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1); 0.1 keeps a tenth for validation")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplyTrainConfig:
        lora = dict(data["lora"])
        if lora.get("targets") is not None:
            lora["targets"] = tuple(lora["targets"])
        return cls(LoopConfig(**data["loop"]), LoraSettings(**lora), data["val_fraction"])


@dataclass(frozen=True, slots=True)
class Split:
    train: list[Example]
    val: list[Example]
    heldout: int  # conversations left for the eval gate


@dataclass(frozen=True, slots=True)
class ReplyTrainingResult:
    out_dir: Path
    adapter: AdapterVersion | None  # None when written to --out (not registered)
    metrics: dict[str, Any]
    data: Path
    data_hash: str


def account_style(settings: Settings, account: str) -> ReplyStyle:
    """The reply style of `account` (or of the account whose console it is)."""
    from bot.accounts import load_accounts

    for configured in load_accounts(settings).all:
        if account in (configured.name, configured.console().name):
            return configured.style
    raise ConfigError(
        f"there is no configured account {account!r}; name one of the accounts in the config "
        "(see `autoreply accounts list`)"
    )


def split_examples(
    renderer: Renderer, conversations: Sequence[Conversation], val_fraction: float, seed: int
) -> Split:
    """Render, leave out the eval gate's held-out conversations, split the rest by
    conversation (the replies of one conversation never straddle train and validation)."""
    from training.evaluate import is_heldout

    rendered: list[list[Example]] = []
    heldout = 0
    for conversation in conversations:
        if is_heldout(conversation.key):
            heldout += 1
            continue
        examples = conversation_examples(renderer, conversation)
        if examples:
            rendered.append(examples)
    order = list(range(len(rendered)))
    random.Random(seed).shuffle(order)
    n_val = min(max(1, round(len(rendered) * val_fraction)), len(rendered) - 1)
    n_val = n_val if val_fraction > 0 and len(rendered) >= 2 else 0
    val = [e for i in order[:n_val] for e in rendered[i]]
    train = [e for i in order[n_val:] for e in rendered[i]]
    return Split(train, val, heldout)


def train_reply(
    settings: Settings,
    account: str,
    *,
    db: Database | None,
    data: Path | None = None,
    since: datetime | None = None,
    out: Path | None = None,
    config: ReplyTrainConfig | None = None,
    resume: Path | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    progress: bool = True,
) -> ReplyTrainingResult:
    """Train `account`'s reply adapter on `data` (an SFT .jsonl file; default: a fresh export
    from `db`). Without `out` it goes into the account's next version directory and is
    registered as a candidate; with `out` it is only written there. `resume`: the directory of
    an interrupted run, whose saved data and settings are used."""
    config = config or ReplyTrainConfig()
    version: int | None = None  # of the reserved directory a resumed run writes into
    given = data
    if resume is not None:
        run = _read_run(resume)
        account, data, config, version = run["account"], run["data"], run["config"], run["version"]
    elif data is None:
        data = _export(db, settings, account, since)
    assert data is not None
    data_hash = file_hash(data)
    loaded, renderer, split = _prepare(settings, account, data, config, since, given)
    if resume is not None:
        out_dir = resume
        slot = registry.Slot(account, KIND, version, resume) if version is not None else None
    else:
        out_dir, slot = _destination(db, settings, account, out)
        _write_run(out_dir, account, data, data_hash, config, slot.version if slot else None)

    log.info("training %s's reply adapter into %s", account, out_dir)
    started = time.perf_counter()
    base = load_base(settings, tokenizer=loaded)
    result, model = _fit(base, split, config, out_dir, data_hash, resume, on_step, progress)
    # The embeddings are not trained: save_embedding_layers=False skips peft's look for the
    # base's config (a .gguf file's directory has none) and its warning.
    model.save_pretrained(str(out_dir), save_embedding_layers=False)
    metrics = _metrics(result, split, time.perf_counter() - started)
    adapter = None
    if db is not None and slot is not None:  # registered only once the adapter is saved whole
        adapter = registry.register(
            db,
            slot,
            base_model=base.ref,
            data_hash=data_hash,
            config=_recorded_config(config, renderer, data),
            metrics=metrics,
        )
    shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
    return ReplyTrainingResult(out_dir, adapter, metrics, data, data_hash)


def train_from_export(db: Database, settings: Settings, account: str, data: Path) -> AdapterVersion:
    """The nightly job's entry: train on an export folder (its sft.jsonl), quietly."""
    result = train_reply(settings, account, db=db, data=data / "sft.jsonl", progress=False)
    assert result.adapter is not None
    return result.adapter


# --- stages -----------------------------------------------------------------------------------


def _export(db: Database | None, settings: Settings, account: str, since: datetime | None) -> Path:
    from training.export import default_out_dir, export_account

    if db is None:
        raise InputError("no --data file and no database to export from; pass --data FILE")
    exported = export_account(db, settings, account, default_out_dir(settings) / account, since)
    log.info("exported %s to %s", account, exported.out_dir)
    return exported.files["sft.jsonl"]


def _check_data(
    conversations: Sequence[Conversation], account: str, since: datetime | None, given: Path | None
) -> None:
    if any(any(c.targets) for c in conversations):
        return
    if given is not None:
        raise InputError(
            f"{given} holds no bot replies to train on; pass an SFT .jsonl file whose lines "
            'have {"messages": [{"role": "user", ...}, {"role": "bot", ...}]}'
        )
    when = f" since {since:%Y-%m-%d %H:%M}" if since else ""
    raise InputError(
        f"no approved or edited replies for account {account}{when}; moderate some drafts "
        "(`autoreply queue approve` / `edit`) or pass --data FILE"
    )


def _prepare(
    settings: Settings,
    account: str,
    data: Path,
    config: ReplyTrainConfig,
    since: datetime | None,
    given: Path | None,
) -> tuple[tuple[str, PreTrainedTokenizerBase], Renderer, Split]:
    """Read, check, render and split the data, before any weights load (a refusal is quick).
    Returns `load_tokenizer`'s answer too, for loading the weights after."""
    conversations = read_conversations(data)
    _check_data(conversations, account, since, given)
    ref, tokenizer = load_tokenizer(settings)
    renderer = _renderer(settings, ref, tokenizer, account_style(settings, account))
    split = split_examples(renderer, conversations, config.val_fraction, config.loop.seed)
    if not split.train:
        raise InputError(
            f"none of the {len(conversations)} conversations in {data} leaves a reply to train "
            f"on ({split.heldout} are kept back for evaluation); moderate more drafts or pass "
            "--data FILE with more replies"
        )
    return (ref, tokenizer), renderer, split


def _renderer(
    settings: Settings, ref: str, tokenizer: PreTrainedTokenizerBase, style: ReplyStyle
) -> Renderer:
    # The config alone (cheap): the data is checked before the weights load.
    model_config = load_pretrained(ref, AutoConfig.from_pretrained)
    return renderer_for(tokenizer, model_config, style, settings.history_turns)


def _fit(
    base: BaseModel,
    split: Split,
    config: ReplyTrainConfig,
    out_dir: Path,
    data_hash: str,
    resume: Path | None,
    on_step: Callable[[StepInfo], None] | None,
    progress: bool,
) -> tuple[LoopResult, PeftModel]:
    lora = config.lora
    torch.manual_seed(config.loop.seed)  # LoRA's A matrices start random
    with warnings.catch_warnings():
        # peft 0.21 calls a transformers 5 API deprecated for another name; not ours to fix.
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        model = get_peft_model(
            base.model,
            lora_config(
                base.model, TaskType.CAUSAL_LM, lora.r, lora.alpha, lora.dropout, lora.targets
            ),
        )
    pad = base.tokenizer.pad_token_id
    trainer = Trainer(
        model,
        split.train,
        split.val,
        config.loop,
        device=base.device,
        pad_id=pad if isinstance(pad, int) else 0,  # padded positions are masked anyway
        checkpoint_dir=out_dir / CHECKPOINT_DIR,
        fingerprint=_fingerprint(data_hash, config, base.ref),
        on_step=on_step,
        progress=progress,
    )
    return trainer.fit(resume=resume is not None), model


def _metrics(result: LoopResult, split: Split, seconds: float) -> dict[str, Any]:
    def perplexity(loss: float | None) -> float | None:
        return math.exp(min(loss, 50.0)) if loss is not None else None

    return {
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "val_perplexity": perplexity(result.val_loss),
        "base_val_loss": result.base_val_loss,
        "base_val_perplexity": perplexity(result.base_val_loss),
        "steps": result.steps,
        "best_step": result.best_step,
        "stopped_early": result.stopped_early,
        "tokens": result.tokens,
        "target_tokens": result.target_tokens,
        "tokens_per_s": round(result.tokens_per_s, 1),
        "train_seconds": round(result.train_seconds, 2),
        "time_s": round(seconds, 2),
        "train_examples": len(split.train),
        "val_examples": len(split.val),
        "heldout_conversations": split.heldout,
    }


def _recorded_config(config: ReplyTrainConfig, renderer: Renderer, data: Path) -> dict[str, Any]:
    """The settings, how prompts were rendered, and the data file (the eval gate measures on
    its held-out part, which training left out)."""
    return {
        **asdict(config),
        "data": str(data.resolve()),
        "prompt_format": renderer.prompt_format,
        "history_turns": renderer.history_turns,
        "max_new_tokens": renderer.max_new_tokens,
        "persona_sha256": hashlib.sha256(renderer.persona.encode()).hexdigest()[:16],
    }


def _fingerprint(data_hash: str, config: ReplyTrainConfig, base_ref: str) -> str:
    text = json.dumps([data_hash, asdict(config), base_ref], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# --- where the adapter goes -------------------------------------------------------------------


def _destination(
    db: Database | None, settings: Settings, account: str, out: Path | None
) -> tuple[Path, Slot | None]:
    """The account's next version directory, reserved; or `out`, which is not registered
    (as with `train classifier --out`)."""
    if out is not None:
        if (out / "adapter_config.json").exists():
            raise InputError(f"{out} already holds an adapter; choose a new --out directory")
        return out, None
    if db is None:
        raise ValueError("pass out= or db= so the adapter has somewhere to go")
    slot = registry.reserve(db, Path(settings.adapters_dir), account, KIND)
    return slot.path, slot


def _write_run(
    out_dir: Path,
    account: str,
    data: Path,
    data_hash: str,
    config: ReplyTrainConfig,
    version: int | None,
) -> None:
    run = {
        "account": account,
        "data": str(data.resolve()),
        "data_hash": data_hash,
        "config": asdict(config),
        "version": version,
    }
    (out_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / CHECKPOINT_DIR / RUN_FILE).write_text(json.dumps(run, indent=2), encoding="utf-8")


def _read_run(resume: Path) -> dict[str, Any]:
    file = resume / CHECKPOINT_DIR / RUN_FILE
    if not file.is_file():
        raise InputError(
            f"{resume} holds no interrupted training ({file} is missing); pass the directory "
            "of the run that stopped, or train afresh without --resume"
        )
    run: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    data = Path(run["data"])
    if not data.is_file() or file_hash(data) != run["data_hash"]:
        raise InputError(
            f"the data the interrupted run trained on ({data}) is gone or changed; a resumed "
            "run must see the same data, so train afresh without --resume"
        )
    run["config"] = ReplyTrainConfig.from_dict(run["config"])
    run["data"] = data
    return run
