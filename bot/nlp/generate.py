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
from dataclasses import replace
from types import TracebackType
from typing import Any

import torch
from transformers import GenerationConfig

from bot.domain import Draft, DraftRequest, ReplyStyle, Turn
from bot.errors import GenerationError
from bot.nlp.loading import first_line
from bot.nlp.models import ModelHost
from bot.nlp.prompts import Prompt, build_prompt, clean_reply, resolve_format

log = logging.getLogger(__name__)


class ReplyGenerator:
    """Turns requests into `Draft`s. Call `close()` (or use `with`) to stop its worker thread."""

    def __init__(self, host: ModelHost, params: ReplyStyle) -> None:
        self.host = host
        self.params = params  # the style of requests that bring none
        # One worker: the model is not re-entrant, and a queue in front of it keeps order.
        # Direct `draft_many` calls from other threads are serialised by `host.lock`.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoreply-gen")

    # --- sync ------------------------------------------------------------------------------

    def draft(self, history: Sequence[Turn], text: str, adapter: str | None = None) -> Draft:
        return self.draft_many([DraftRequest(tuple(history), text, adapter=adapter)])[0]

    def draft_many(self, requests: Sequence[DraftRequest]) -> list[Draft]:
        """Draft one reply per request: one left-padded `generate` call per distinct style
        (decoding settings and stop strings apply to a whole call), adapters chosen per row."""
        drafts: dict[int, Draft] = {}
        groups: dict[ReplyStyle, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.style or self.params, []).append(index)
        for style, indices in groups.items():
            batch = self._draft_batch(style, [requests[i] for i in indices])
            drafts.update(zip(indices, batch, strict=True))
        return [drafts[i] for i in range(len(requests))]

    def _draft_batch(self, style: ReplyStyle, requests: Sequence[DraftRequest]) -> list[Draft]:
        host = self.host
        # `auto` becomes `chat` or `plain` here, where the tokenizer is known.
        style = replace(style, prompt_format=resolve_format(style.prompt_format, host.tokenizer))
        # The lock covers tokenizing too: HF fast tokenizers are not safe to share across
        # threads ("Already borrowed"), and the adapter choice must match the generate call.
        with host.lock, torch.inference_mode():
            adapters = [host.resolve_adapter(request.adapter) for request in requests]
            prompts = [self._prompt(style, request) for request in requests]
            input_ids, attention_mask = self._left_pad(prompts)
            output = self._generate(style, input_ids, attention_mask, adapters)
        new_rows = output[:, input_ids.shape[1] :].tolist()
        return [
            self._to_draft(style, row, prompt, adapter)
            for row, prompt, adapter in zip(new_rows, prompts, adapters, strict=True)
        ]

    # --- async -----------------------------------------------------------------------------

    async def adraft(self, request: DraftRequest) -> Draft:
        drafts = await self.adraft_many([request])
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

    def _prompt(self, style: ReplyStyle, request: DraftRequest) -> Prompt:
        prompt = build_prompt(
            self.host.tokenizer,
            prompt_format=resolve_format(style.prompt_format, self.host.tokenizer),
            persona=style.persona,
            history=request.history,
            text=request.text,
            max_positions=self.host.max_positions,
            max_new_tokens=style.max_new_tokens,
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

    def _generation_config(self, params: ReplyStyle) -> GenerationConfig:
        host = self.host
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
        self,
        style: ReplyStyle,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        adapters: list[str | None],
    ) -> torch.Tensor:
        if style.seed is not None:
            torch.manual_seed(style.seed)  # global RNG; fine under the host lock
        try:
            return self.host.generate(
                input_ids,
                attention_mask,
                config=self._generation_config(style),
                adapters=adapters,
                tokenizer=self.host.tokenizer if style.prompt_format == "plain" else None,
            )
        except RuntimeError as exc:  # torch failures, e.g. out of memory
            raise GenerationError(
                f"the model failed while drafting ({first_line(exc)}); lower "
                "AUTOREPLY_MAX_NEW_TOKENS or the batch size, or check the device"
            ) from exc

    def _to_draft(
        self, params: ReplyStyle, row: list[int], prompt: Prompt, adapter: str | None
    ) -> Draft:
        tokenizer = self.host.tokenizer
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
