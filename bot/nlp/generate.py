"""Draft replies with the hosted model: one left-padded batch per call, off the event loop.

`ReplyGenerator.draft_many` is the single entry point to the model. `adraft` runs it on a
dedicated one-thread executor so a slow `generate()` never blocks asyncio (APScheduler jobs
and Telegram updates keep flowing). A later micro-batcher can gather concurrent requests into
one `draft_many` call: each `DraftRequest` names its own adapter, and mixed rows go through
peft's `adapter_names=`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
from transformers import GenerationConfig

from bot.config import DEFAULT_FALLBACK, DEFAULT_PERSONA, Settings
from bot.domain import Draft, Turn
from bot.errors import GenerationError
from bot.nlp.loading import first_line
from bot.nlp.models import ModelHost
from bot.nlp.prompts import Prompt, PromptFormat, build_prompt, clean_reply

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Decoding and prompt settings for drafting; see `Settings` for what each one does.

    The defaults are `Settings`' defaults, so tests and tools can build one directly.
    """

    max_new_tokens: int = 48
    temperature: float = 0.8
    top_p: float = 0.9
    repetition_penalty: float = 1.3
    no_repeat_ngram_size: int = 3
    do_sample: bool = True
    seed: int | None = None
    prompt_format: PromptFormat = "plain"
    persona: str = DEFAULT_PERSONA
    bot_name: str = "Bot"
    fallback_reply: str = DEFAULT_FALLBACK

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1; raise AUTOREPLY_MAX_NEW_TOKENS")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0; use do_sample=False for greedy decoding")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]; fix AUTOREPLY_TOP_P")
        if not self.fallback_reply.strip():
            raise ValueError("fallback_reply must not be blank; set AUTOREPLY_FALLBACK_REPLY")

    @classmethod
    def from_settings(cls, settings: Settings) -> GenerationParams:
        return cls(
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            repetition_penalty=settings.repetition_penalty,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            do_sample=settings.do_sample,
            seed=settings.seed,
            prompt_format=settings.prompt_format,
            persona=settings.persona,
            bot_name=settings.bot_name,
            fallback_reply=settings.fallback_reply,
        )


@dataclass(frozen=True, slots=True)
class DraftRequest:
    """One reply to draft. `adapter`: None uses the host's active adapter, BASE_ADAPTER none."""

    history: tuple[Turn, ...]
    text: str
    adapter: str | None = None


class ReplyGenerator:
    """Turns requests into `Draft`s. Call `close()` (or use `with`) to stop its worker thread."""

    def __init__(self, host: ModelHost, params: GenerationParams) -> None:
        self.host = host
        self.params = params
        # One worker: the model is not re-entrant, and a queue in front of it keeps order.
        # Direct `draft_many` calls from other threads are serialised by `host.lock`.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoreply-gen")

    # --- sync ------------------------------------------------------------------------------

    def draft(self, history: Sequence[Turn], text: str, adapter: str | None = None) -> Draft:
        return self.draft_many([DraftRequest(tuple(history), text, adapter)])[0]

    def draft_many(self, requests: Sequence[DraftRequest]) -> list[Draft]:
        """Draft one reply per request in a single left-padded `generate` call."""
        if not requests:
            return []
        host = self.host
        # The lock covers tokenizing too: HF fast tokenizers are not safe to share across
        # threads ("Already borrowed"), and the adapter choice must match the generate call.
        with host.lock, torch.inference_mode():
            adapters = [host.resolve_adapter(request.adapter) for request in requests]
            prompts = [self._prompt(request) for request in requests]
            input_ids, attention_mask = self._left_pad(prompts)
            output = self._generate(input_ids, attention_mask, adapters)
        new_rows = output[:, input_ids.shape[1] :].tolist()
        return [
            self._to_draft(row, prompt, adapter)
            for row, prompt, adapter in zip(new_rows, prompts, adapters, strict=True)
        ]

    # --- async -----------------------------------------------------------------------------

    async def adraft(self, history: Sequence[Turn], text: str, adapter: str | None = None) -> Draft:
        drafts = await self.adraft_many([DraftRequest(tuple(history), text, adapter)])
        return drafts[0]

    async def adraft_many(self, requests: Sequence[DraftRequest]) -> list[Draft]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.draft_many, list(requests))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ReplyGenerator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------

    def _prompt(self, request: DraftRequest) -> Prompt:
        prompt = build_prompt(
            self.host.tokenizer,
            prompt_format=self.params.prompt_format,
            persona=self.params.persona,
            history=request.history,
            text=request.text,
            max_positions=self.host.max_positions,
            max_new_tokens=self.params.max_new_tokens,
        )
        if prompt.truncated:
            log.info(
                "prompt cut to fit %d positions (dropped %d turns, message cut: %s)",
                self.host.max_positions,
                prompt.dropped_turns,
                prompt.message_cut,
            )
        return prompt

    def _left_pad(self, prompts: Sequence[Prompt]) -> tuple[torch.Tensor, torch.Tensor]:
        pad_id = self.host.tokenizer.pad_token_id
        if not isinstance(pad_id, int):
            pad_id = self.host.eos_token_id
        width = max(len(prompt.input_ids) for prompt in prompts)
        ids = [[pad_id] * (width - len(p.input_ids)) + list(p.input_ids) for p in prompts]
        mask = [[0] * (width - len(p.input_ids)) + [1] * len(p.input_ids) for p in prompts]
        device = self.host.device
        return torch.tensor(ids, device=device), torch.tensor(mask, device=device)

    def _generation_config(self) -> GenerationConfig:
        params, host = self.params, self.host
        sampling: dict[str, Any] = {}
        if params.do_sample:
            sampling = {"temperature": params.temperature, "top_p": params.top_p, "top_k": 0}
        # from_dict: the constructor is unannotated (**kwargs) and strict mypy rejects it.
        return GenerationConfig.from_dict(
            {
                "max_new_tokens": params.max_new_tokens,
                "do_sample": params.do_sample,
                "repetition_penalty": params.repetition_penalty,
                "no_repeat_ngram_size": params.no_repeat_ngram_size,
                "eos_token_id": host.eos_token_id,
                "pad_token_id": host.tokenizer.pad_token_id,
                # The bot's turn ends at a line break in the plain format; DialoGPT ends with EOS.
                "stop_strings": ["\n"] if params.prompt_format == "plain" else None,
                **sampling,
            }
        )

    def _generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, adapters: list[str | None]
    ) -> torch.Tensor:
        if self.params.seed is not None:
            torch.manual_seed(self.params.seed)  # global RNG; fine under the host lock
        try:
            return self.host.generate(
                input_ids,
                attention_mask,
                config=self._generation_config(),
                adapters=adapters,
                tokenizer=self.host.tokenizer if self.params.prompt_format == "plain" else None,
            )
        except RuntimeError as exc:  # torch failures, e.g. out of memory
            raise GenerationError(
                f"the model failed while drafting ({first_line(exc)}); lower "
                "AUTOREPLY_MAX_NEW_TOKENS or the batch size, or check the device"
            ) from exc

    def _to_draft(self, row: list[int], prompt: Prompt, adapter: str | None) -> Draft:
        params, tokenizer = self.params, self.host.tokenizer
        eos = self.host.eos_token_id
        # A row that finished before the others is filled with the pad token (EOS for GPT-2).
        ends = {eos, tokenizer.pad_token_id}
        end = next((i for i, token in enumerate(row) if token in ends), len(row))
        generated, hit_eos = row[:end], end < len(row) and row[end] == eos
        raw = tokenizer.decode(generated, skip_special_tokens=True)
        assert isinstance(raw, str)  # one sequence in, one string out
        stopped = hit_eos or (params.prompt_format == "plain" and "\n" in raw)
        text = clean_reply(raw, bot_name=params.bot_name, stopped=stopped)
        fallback_used = not text
        if fallback_used:
            log.warning(
                "draft empty after clean-up, using the fallback reply (raw=%r, stopped=%s)",
                raw[:200],
                stopped,
            )
            text = params.fallback_reply
        return Draft(
            text=text,
            raw=raw,
            fallback_used=fallback_used,
            model=self.host.name_for(adapter),
            adapter=adapter,
            prompt_tokens=len(prompt.input_ids),
            new_tokens=len(generated),
        )
