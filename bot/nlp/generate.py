"""Draft replies with the hosted model: left-padded batches, one result per request.

`ReplyGenerator.draft_settled` is the single entry point to the model. It takes any mix of
requests (accounts, prompt formats, lengths, adapters, candidate counts), groups them by the
decoding settings that must be shared by one `generate` call, stops each row on its own
(`RowStops`: the row's own token cap, and a line break for the plain format), and returns a
`Draft` or the exception for each request, so one bad request never fails the others. The
micro-batcher (`batching.py`) feeds it concurrent requests; `adraft` runs it on a dedicated
one-thread executor so a slow `generate()` never blocks asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from bot.domain import Candidate, Draft, DraftRequest, ReplyStyle, Turn
from bot.errors import GenerationError
from bot.nlp.candidates import drop_reason, rank
from bot.nlp.loading import first_line
from bot.nlp.models import ModelHost
from bot.nlp.prompts import Prompt, PromptFormat, build_prompt, clean_reply, resolve_format

log = logging.getLogger(__name__)

# How requests that differ in prompt format or length share a `generate` call:
# "per_row" groups only by the decoding settings and stops each row with `RowStops`;
# "style" groups by the whole style (one call per distinct style). `autoreply bench generate`
# measures both; per_row is the default because it was faster on mixed traffic.
GroupBy = Literal["per_row", "style"]


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """Caps on one `generate` call: rows (candidates count as rows) and padded tokens."""

    max_rows: int = 16
    token_budget: int = 16384

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.token_budget < 1:
            raise ValueError("batch limits must be >= 1; fix AUTOREPLY_MAX_BATCH/TOKEN_BUDGET")


@dataclass(frozen=True, slots=True)
class Decoding:
    """The settings one `generate` call applies to every row (logits processors and seed)."""

    do_sample: bool
    temperature: float
    top_p: float
    repetition_penalty: float
    no_repeat_ngram_size: int
    min_new_tokens: int
    seed: int | None

    @classmethod
    def of(cls, style: ReplyStyle) -> Decoding:
        return cls(
            do_sample=style.do_sample,
            temperature=style.temperature if style.do_sample else 1.0,
            top_p=style.top_p if style.do_sample else 1.0,
            repetition_penalty=style.repetition_penalty,
            no_repeat_ngram_size=style.no_repeat_ngram_size,
            min_new_tokens=style.min_new_tokens,
            seed=style.seed,
        )


@dataclass(frozen=True, slots=True)
class _Row:
    """One prepared request: its concrete style, tokens, adapter and candidate count."""

    index: int
    style: ReplyStyle
    prompt: Prompt
    adapter: str | None
    samples: int

    @property
    def width(self) -> int:
        return len(self.prompt.input_ids) + self.style.max_new_tokens


class RowStops(StoppingCriteria):
    """Stop each row on its own: at its own `max_new_tokens`, and at a line break for rows
    in the plain format (the bot's turn is one line). EOS is handled by `generate` itself.

    transformers' `max_new_tokens` and `stop_strings` apply to a whole call; this is what lets
    rows of different accounts (formats, lengths) share one batch. Finished rows are padded.
    """

    def __init__(
        self,
        *,
        prompt_width: int,
        max_new: Sequence[int],
        min_new: int,
        stop_at_newline: Sequence[bool],
        newline_tokens: torch.Tensor,
    ) -> None:
        device = newline_tokens.device
        self._prompt_width = prompt_width
        self._max_new = torch.tensor(list(max_new), device=device)
        self._min_new = min_new
        self._newline_rows = torch.tensor(list(stop_at_newline), device=device)
        self._newline_tokens = newline_tokens

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self._prompt_width
        done = self._max_new <= generated
        if generated >= max(self._min_new, 1):
            last = input_ids[:, -1].clamp(0, self._newline_tokens.numel() - 1)
            done = done | (self._newline_rows & self._newline_tokens[last])
        return done  # type: ignore[return-value]  # a bool tensor, as transformers wants


class ReplyGenerator:
    """Turns requests into `Draft`s. Call `close()` (or use `with`) to stop its worker thread."""

    def __init__(
        self,
        host: ModelHost,
        params: ReplyStyle,
        *,
        limits: BatchLimits | None = None,
        group_by: GroupBy = "per_row",
    ) -> None:
        self.host = host
        self.params = params  # the style of requests that bring none
        self.limits = limits or BatchLimits()
        self.group_by: GroupBy = group_by
        # One worker: the model is not re-entrant, and a queue in front of it keeps order.
        # Direct `draft_many` calls from other threads are serialised by `host.lock`.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoreply-gen")

    # --- sync ------------------------------------------------------------------------------

    def draft(self, history: Sequence[Turn], text: str, adapter: str | None = None) -> Draft:
        return self.draft_many([DraftRequest(tuple(history), text, adapter=adapter)])[0]

    def draft_many(self, requests: Sequence[DraftRequest]) -> list[Draft]:
        """Like `draft_settled`, but the first failed request raises."""
        drafts: list[Draft] = []
        for result in self.draft_settled(requests):
            if isinstance(result, BaseException):
                raise result
            drafts.append(result)
        return drafts

    def draft_settled(self, requests: Sequence[DraftRequest]) -> list[Draft | Exception]:
        """One draft per request, or the exception that request alone ran into.

        Rows are grouped by what one `generate` call must share (`Decoding`, or the whole style
        with group_by="style"), sorted by length to cut padding, and cut into calls that fit
        `limits`. A call that fails is split in halves and retried, so only the request that
        cannot be drafted fails.
        """
        results: dict[int, Draft | Exception] = {}
        groups: dict[object, list[_Row]] = {}
        # The lock covers tokenizing too: HF fast tokenizers are not safe to share across
        # threads ("Already borrowed"), and adapters must not change between resolve and use.
        with self.host.lock, torch.inference_mode():
            for index, request in enumerate(requests):
                try:
                    row = self._prepare(index, request)
                except Exception as exc:  # noqa: BLE001 - reported to that request's caller
                    results[index] = exc
                    continue
                key = Decoding.of(row.style) if self.group_by == "per_row" else row.style
                groups.setdefault(key, []).append(row)
            for rows in groups.values():
                for chunk in self._chunks(rows):
                    results.update(self._run_isolated(chunk))
        return [results[i] for i in range(len(requests))]

    def _prepare(self, index: int, request: DraftRequest) -> _Row:
        style = request.style or self.params
        # `auto` becomes `chat` or `plain` here, where the tokenizer is known.
        prompt_format = resolve_format(style.prompt_format, self.host.tokenizer)
        style = replace(style, prompt_format=prompt_format)
        adapter = self.host.resolve_adapter(request.adapter)
        # Greedy decoding gives n copies of one reply: sample one.
        samples = style.candidates if style.do_sample else 1
        prompt = self._prompt(style, prompt_format, request)
        return _Row(index, style, prompt, adapter, samples)

    def _chunks(self, rows: list[_Row]) -> Iterator[list[_Row]]:
        """Calls that fit the limits; rows of similar length together so padding stays small."""
        chunk: list[_Row] = []
        for row in sorted(rows, key=lambda r: len(r.prompt.input_ids)):
            candidate = [*chunk, row]
            n_rows = sum(r.samples for r in candidate)
            tokens = n_rows * max(r.width for r in candidate)
            if chunk and (n_rows > self.limits.max_rows or tokens > self.limits.token_budget):
                yield chunk
                candidate = [row]
            chunk = candidate
        if chunk:
            yield chunk

    def _run_isolated(self, rows: list[_Row]) -> dict[int, Draft | Exception]:
        try:
            return dict(zip((r.index for r in rows), self._run(rows), strict=True))
        except Exception as exc:  # noqa: BLE001 - narrowed to the failing request below
            if len(rows) == 1:
                return {rows[0].index: exc}
            log.warning("a batch of %d failed (%s); retrying in halves", len(rows), exc)
            half = len(rows) // 2
            return self._run_isolated(rows[:half]) | self._run_isolated(rows[half:])

    def _run(self, rows: list[_Row]) -> list[Draft]:
        # Rows repeat once per candidate: peft refuses num_return_sequences with adapter_names.
        expanded = [row for row in rows for _ in range(row.samples)]
        input_ids, attention_mask = self._left_pad([row.prompt for row in expanded])
        score = any(row.samples > 1 for row in rows)
        sequences, logits = self._generate(expanded, input_ids, attention_mask, score=score)
        new_rows = sequences[:, input_ids.shape[1] :]
        logprobs = _token_logprobs(logits, new_rows) if logits is not None else None
        drafts: list[Draft] = []
        start = 0
        for row in rows:
            span = range(start, start + row.samples)
            start += row.samples
            outputs = [new_rows[i].tolist() for i in span]
            scores = [logprobs[i] if logprobs is not None else None for i in span]
            drafts.append(self._to_draft(row, outputs, scores))
        return drafts

    # --- async -----------------------------------------------------------------------------

    async def adraft(self, request: DraftRequest) -> Draft:
        drafts = await self.adraft_many([request])
        return drafts[0]

    async def adraft_many(self, requests: Sequence[DraftRequest]) -> list[Draft]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.draft_many, list(requests))

    async def adraft_settled(self, requests: Sequence[DraftRequest]) -> list[Draft | Exception]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.draft_settled, list(requests))

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

    def _prompt(
        self, style: ReplyStyle, prompt_format: PromptFormat, request: DraftRequest
    ) -> Prompt:
        prompt = build_prompt(
            self.host.tokenizer,
            prompt_format=prompt_format,
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
        pad_id = self.host.pad_token_id
        width = max(len(prompt.input_ids) for prompt in prompts)
        ids = [[pad_id] * (width - len(p.input_ids)) + list(p.input_ids) for p in prompts]
        mask = [[0] * (width - len(p.input_ids)) + [1] * len(p.input_ids) for p in prompts]
        device = self.host.device
        return torch.tensor(ids, device=device), torch.tensor(mask, device=device)

    def _generation_config(self, decoding: Decoding, max_new_tokens: int) -> GenerationConfig:
        host = self.host
        sampling: dict[str, Any] = {}
        if decoding.do_sample:
            sampling = {"temperature": decoding.temperature, "top_p": decoding.top_p, "top_k": 0}
        # from_dict: the constructor is unannotated (**kwargs) and strict mypy rejects it.
        return GenerationConfig.from_dict(
            {
                "max_new_tokens": max_new_tokens,
                "min_new_tokens": decoding.min_new_tokens or None,
                "do_sample": decoding.do_sample,
                "repetition_penalty": decoding.repetition_penalty,
                "no_repeat_ngram_size": decoding.no_repeat_ngram_size,
                "eos_token_id": host.eos_token_id,
                "pad_token_id": host.pad_token_id,
                **sampling,
            }
        )

    def _generate(
        self,
        rows: Sequence[_Row],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        score: bool,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        decoding = Decoding.of(rows[0].style)
        max_new = max(row.style.max_new_tokens for row in rows)
        stops = RowStops(
            prompt_width=input_ids.shape[1],
            max_new=[row.style.max_new_tokens for row in rows],
            min_new=decoding.min_new_tokens,
            stop_at_newline=[row.style.prompt_format == "plain" for row in rows],
            newline_tokens=self.host.newline_tokens(),
        )
        if decoding.seed is not None:
            torch.manual_seed(decoding.seed)  # global RNG; fine under the host lock
        try:
            return self.host.generate(
                input_ids,
                attention_mask,
                config=self._generation_config(decoding, max_new),
                adapters=[row.adapter for row in rows],
                stopping=StoppingCriteriaList([stops]),
                output_logits=score,
            )
        except RuntimeError as exc:  # torch failures, e.g. out of memory
            raise GenerationError(
                f"the model failed while drafting ({first_line(exc)}); lower "
                "AUTOREPLY_MAX_NEW_TOKENS or AUTOREPLY_MAX_BATCH, or check the device"
            ) from exc

    def _to_draft(
        self, row: _Row, outputs: Sequence[list[int]], scores: Sequence[list[float] | None]
    ) -> Draft:
        style = row.style
        candidates = [
            self._candidate(style, output, score)
            for output, score in zip(outputs, scores, strict=True)
        ]
        if len(candidates) > 1:
            ranked = rank(candidates)
        else:
            # A lone draft is only replaced when nothing is left of it: there is no better
            # candidate to prefer, and moderators see the rest.
            ranked = (replace(candidates[0], dropped=None),)
        best = ranked[0]
        fallback_used = best.dropped is not None or not best.text
        if fallback_used:
            # What the model wrote goes to DEBUG only: at INFO and above, logs carry no bodies.
            log.warning(
                "no usable draft among %d candidate(s), using the fallback reply (best raw "
                "output: %d characters, dropped as %s)",
                len(ranked),
                len(best.raw),
                best.dropped.value if best.dropped is not None else "empty",
            )
            log.debug("raw output of the dropped draft: %r", best.raw[:200])
        return Draft(
            text=style.fallback_reply if fallback_used else best.text,
            raw=best.raw,
            fallback_used=fallback_used,
            model=self.host.name_for(row.adapter),
            adapter=row.adapter,
            prompt_tokens=len(row.prompt.input_ids),
            new_tokens=best.new_tokens,
            candidates=ranked if len(ranked) > 1 else (),
        )

    def _candidate(
        self, style: ReplyStyle, output: list[int], logprobs: list[float] | None
    ) -> Candidate:
        tokenizer = self.host.tokenizer
        eos = self.host.eos_token_id
        # A row that finished before the others is filled with the pad token (EOS for GPT-2),
        # so only a row that ended before its own cap can have ended with EOS.
        output = output[: style.max_new_tokens + 1]
        ends = {eos, self.host.pad_token_id}
        end = next((i for i, token in enumerate(output) if token in ends), len(output))
        generated = output[:end]
        hit_eos = end < min(len(output), style.max_new_tokens) and output[end] == eos
        raw = tokenizer.decode(generated, skip_special_tokens=True)
        assert isinstance(raw, str)  # one sequence in, one string out
        stopped = hit_eos or (style.prompt_format == "plain" and "\n" in raw)
        text = clean_reply(raw, bot_name=style.bot_name, stopped=stopped)
        # Length-normalised log-probability, counting the EOS that ended the reply.
        # (A row stopped at a line break or its cap goes on as padding: those steps are not its.)
        counted = logprobs[: end + 1 if hit_eos else end] if logprobs is not None else []
        score = sum(counted) / len(counted) if counted else -math.inf
        return Candidate(
            text=text,
            raw=raw,
            score=score if logprobs is not None else 0.0,
            new_tokens=len(generated),
            dropped=drop_reason(text),
        )


def _token_logprobs(logits: Sequence[torch.Tensor], new_tokens: torch.Tensor) -> list[list[float]]:
    """Per row, the log-probability of each generated token under the raw logits (before
    temperature and top-p), one step at a time so no [steps, rows, vocab] tensor is built."""
    steps = min(len(logits), new_tokens.shape[1])
    per_step = [
        torch.log_softmax(logits[t].float(), dim=-1).gather(1, new_tokens[:, t : t + 1]).squeeze(1)
        for t in range(steps)
    ]
    if not per_step:
        return [[] for _ in range(new_tokens.shape[0])]
    rows: list[list[float]] = torch.stack(per_step, dim=1).tolist()
    return rows
