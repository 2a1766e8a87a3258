"""Preference tuning (DPO) of an account's reply adapter on the moderators' choices.

Stages: exported preference pairs (training/rows.py) -> prompts rendered exactly as the
drafter renders them and both replies with the format's end of turn (training/render.py) ->
TRL's `DPOTrainer`, starting from the account's active reply adapter, loaded under the name
"default" and trainable, so TRL uses the same model with the adapter switched off as the
frozen reference (no second model in memory) -> `save_pretrained` into the next version
directory -> registered as a reply candidate whose parent is the adapter it started from.

TRL is imported inside `train_preference` only: it is the optional `train` extra.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bot.errors import ConfigError, InputError
from training import registry
from training.render import Renderer, prompt_text, render_prompt, reply_text
from training.rows import PreferencePair, file_hash, read_preferences

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.storage.db import Database
    from training.registry import AdapterVersion

log = logging.getLogger(__name__)

KIND = "reply"
MIN_PAIRS = 8  # fewer pairs teach noise, and a whole epoch is a handful of steps
TRL_MISSING = "install the training extra: pip install -e '.[train]'"


@dataclass(frozen=True, slots=True)
class PreferenceConfig:
    """DPO settings; saved with the adapter."""

    epochs: int = 1
    lr: float = 2e-5
    beta: float = 0.1  # how far the tuned replies may move from the starting adapter's
    batch_size: int = 4
    grad_accum: int = 1
    seed: int = 0
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("epochs, batch_size and grad_accum must be >= 1")
        if not self.lr > 0 or not self.beta > 0:
            raise ValueError("lr and beta must be > 0; e.g. --lr 2e-5, beta 0.1")


@dataclass(frozen=True, slots=True)
class PreferenceResult:
    out_dir: Path
    adapter: AdapterVersion | None  # None when written to --out (not registered)
    parent: str
    metrics: dict[str, Any]


def preference_rows(renderer: Renderer, pairs: Sequence[PreferencePair]) -> list[dict[str, str]]:
    """TRL's standard preference rows: the generation prompt as text, and each reply as the
    text that follows it up to the end of turn."""
    rows = []
    for pair in pairs:
        persona = not render_prompt(renderer, pair.history, pair.text).persona_dropped
        rows.append(
            {
                "prompt": prompt_text(renderer, pair.history, pair.text),
                "chosen": reply_text(renderer, pair.text, pair.chosen, persona=persona),
                "rejected": reply_text(renderer, pair.text, pair.rejected, persona=persona),
            }
        )
    return rows


def train_preference(
    settings: Settings,
    account: str,
    *,
    db: Database,
    data: Path | None = None,
    start_from: str | None = None,
    out: Path | None = None,
    config: PreferenceConfig | None = None,
    min_pairs: int = MIN_PAIRS,
    progress: bool = True,
) -> PreferenceResult:
    """DPO on `account`'s preference pairs (`data`, default: a fresh export), starting from the
    adapter `start_from` (default: the account's active reply adapter). The result goes into
    the next version directory and is registered as a reply candidate with that parent (or is
    only written to `out`)."""
    try:
        import datasets  # type: ignore[import-untyped]
        from trl.trainer.dpo_config import DPOConfig
        from trl.trainer.dpo_trainer import DPOTrainer
    except ImportError as exc:
        raise ConfigError(f"preference tuning needs TRL; {TRL_MISSING}") from exc
    from peft import PeftModel

    from training.base import load_base
    from training.render import renderer_for
    from training.train_reply import account_style

    config = config or PreferenceConfig()
    start = _starting_adapter(db, account, start_from)
    data = data if data is not None else _export(db, settings, account)
    pairs = read_preferences(data)
    if len(pairs) < min_pairs:
        raise InputError(
            f"only {len(pairs)} preference pair(s) for account {account} in {data}; preference "
            f"tuning needs at least {min_pairs}. Moderators' edits and rejections make them: "
            "moderate more drafts, or pass --data FILE"
        )
    base = load_base(settings, move=False)  # TRL places the model itself
    _check_base(start, base.ref)
    renderer = renderer_for(
        base.tokenizer, base.model.config, account_style(settings, account), settings.history_turns
    )
    rows = preference_rows(renderer, pairs)
    tokenizer = _no_added_specials(base.tokenizer, rows[0]["prompt"], renderer, pairs[0])

    slot = registry.reserve(db, Path(settings.adapters_dir), account, KIND) if out is None else None
    out_dir = out if out is not None else slot.path if slot is not None else Path()
    with warnings.catch_warnings():
        # peft 0.21 calls a transformers 5 API deprecated for another name; not ours to fix.
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        model = PeftModel.from_pretrained(
            base.model, str(start.path), adapter_name="default", is_trainable=True
        )
    cpu = base.device == "cpu"
    args = DPOConfig(
        output_dir=str(out_dir / ".dpo"),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        beta=config.beta,
        seed=config.seed,
        max_length=renderer.max_positions,
        # PITFALLS: on CPU, bf16 must be off explicitly (use_cpu alone trains in bf16 autocast).
        use_cpu=cpu,
        bf16=not cpu and base.dtype == torch.bfloat16,
        # TRL turns checkpointing on by default; a LoRA on a small model does not need it.
        # (`activation_checkpointing` is transformers 5's name; the old one warns.)
        activation_checkpointing=False,
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        disable_tqdm=not progress,
    )
    started = time.perf_counter()
    trainer = DPOTrainer(
        model=model,
        ref_model=None,  # TRL copies the starting adapter as the frozen reference
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    output = trainer.train()
    # Only the tuned adapter: TRL added a frozen "ref" copy beside it.
    model.save_pretrained(str(out_dir), selected_adapters=["default"], save_embedding_layers=False)
    shutil.rmtree(out_dir / ".dpo", ignore_errors=True)
    metrics = _metrics(trainer.state.log_history, output.training_loss, len(rows), started)
    adapter = None
    if slot is not None:
        adapter = registry.register(
            db,
            slot,
            base_model=base.ref,
            data_hash=file_hash(data),
            config={
                **asdict(config),
                "method": "dpo",
                "prompt_format": renderer.prompt_format,
                # Not "data": the eval gate reads SFT conversations from that key.
                "preference_data": str(data.resolve()),
            },
            metrics=metrics,
            parent=start.name,
        )
    return PreferenceResult(out_dir, adapter, start.name, metrics)


def _starting_adapter(db: Database, account: str, name: str | None) -> AdapterVersion:
    if name is not None:
        found = registry.get(db, name)
        if found.account != account or found.kind != KIND:
            raise InputError(
                f"{name} is a {found.kind} adapter of {found.account}; pass a reply adapter of "
                f"{account} with --from (see `autoreply adapters list --account {account}`)"
            )
        return found
    active = registry.active(db, account, KIND)
    if active is None:
        raise InputError(
            f"account {account} has no active reply adapter to start from; train one "
            "(`autoreply train reply`) and promote it, or pass --from NAME"
        )
    return active


def _check_base(start: AdapterVersion, ref: str) -> None:
    if start.base_model != ref:
        raise ConfigError(
            f"{start.name} was trained on {start.base_model}, but the configured model is {ref}; "
            "set AUTOREPLY_MODEL back, or start from an adapter trained on this model"
        )


def _export(db: Database, settings: Settings, account: str) -> Path:
    from training.export import default_out_dir, export_account

    exported = export_account(db, settings, account, default_out_dir(settings) / account)
    return exported.files["preferences.jsonl"]


def _no_added_specials(
    tokenizer: Any, prompt: str, renderer: Renderer, pair: PreferencePair
) -> Any:
    """The tokenizer TRL gets: it tokenizes text with special tokens added, so one that adds a
    BOS would train on a prompt the drafter never sends. Such a tokenizer is copied with BOS and
    EOS adding switched off."""
    expected = list(render_prompt(renderer, pair.history, pair.text).input_ids)
    if list(tokenizer(text=prompt)["input_ids"]) == expected:
        return tokenizer
    import copy

    quiet = copy.deepcopy(tokenizer)
    for flag in ("add_bos_token", "add_eos_token"):
        if hasattr(quiet, flag):
            setattr(quiet, flag, False)
    if list(quiet(text=prompt)["input_ids"]) != expected:
        raise ConfigError(
            "this tokenizer does not give back the drafter's prompt tokens from the prompt text, "
            "so preference tuning would train on other prompts; use prompt_format plain"
        )
    return quiet


def _metrics(
    history: Sequence[dict[str, Any]], loss: float, pairs: int, started: float
) -> dict[str, Any]:
    """The last logged DPO figures (reward accuracy and margin) and the mean loss."""
    last: dict[str, Any] = {}
    for record in history:
        last.update({k: v for k, v in record.items() if k.startswith(("rewards/", "logps/"))})
    return {
        "dpo_loss": loss if math.isfinite(loss) else None,
        "reward_accuracy": last.get("rewards/accuracies"),
        "reward_margin": last.get("rewards/margins"),
        "pairs": pairs,
        "time_s": round(time.perf_counter() - started, 2),
    }
