"""Training examples rendered exactly as generation renders the prompt.

The prompt part of every example comes from `bot.nlp.prompts.build_prompt`, the function the
drafter calls, with the account's persona and prompt format, the same `history_turns` cut and
the same left cut by tokens (room is kept for `max_new_tokens`). So an adapter is trained on
the very token ids it will see when it drafts. After the prompt come the reply's tokens and the
format's end of turn, which is what stops generation:

* plain: the reply, then a line break (how every ``Bot:`` line in the history ends, and where
  the drafter stops a plain row);
* dialogpt: the reply, then EOS;
* chat: what the template adds for the assistant turn, up to and including EOS. It is found by
  rendering the conversation without the reply (with the generation prompt) and with it, and
  taking the difference: SmolLM2's template marks no assistant spans of its own.

Only the reply tokens are trained on; prompt positions get the label -100.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from bot.domain import ReplyStyle, Role, Turn
from bot.nlp.models import DEFAULT_MAX_POSITIONS
from bot.nlp.prompts import Prompt, PromptFormat, build_prompt, resolve_format, sanitize
from training.rows import Conversation

IGNORE_INDEX = -100  # the label cross-entropy skips (torch's default ignore_index)


@dataclass(frozen=True, slots=True)
class Renderer:
    """Everything that decides how one account's prompts look; build it with `renderer_for`."""

    tokenizer: PreTrainedTokenizerBase
    prompt_format: PromptFormat
    persona: str
    history_turns: int
    max_positions: int
    max_new_tokens: int

    @property
    def eos_id(self) -> int:
        eos = self.tokenizer.eos_token_id
        if not isinstance(eos, int):
            raise ValueError("the tokenizer has no eos_token; train a causal LM that defines one")
        return eos


@dataclass(frozen=True, slots=True)
class Example:
    """One training sequence: prompt then reply; `labels` is -100 over the prompt."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_targets(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def max_positions(config: Any) -> int:
    """The model's context length, read as `ModelHost.max_positions` reads it."""
    for attr in ("n_positions", "max_position_embeddings"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_POSITIONS


def renderer_for(
    tokenizer: PreTrainedTokenizerBase, model_config: Any, style: ReplyStyle, history_turns: int
) -> Renderer:
    """The renderer for an account's `style`, as the drafter would prompt with it."""
    return Renderer(
        tokenizer=tokenizer,
        prompt_format=resolve_format(style.prompt_format, tokenizer),
        persona=style.persona,
        history_turns=history_turns,
        max_positions=max_positions(model_config),
        max_new_tokens=style.max_new_tokens,
    )


def render_prompt(renderer: Renderer, history: Sequence[Turn], text: str) -> Prompt:
    """The generation prompt for `text` after `history`: the pipeline's last
    `history_turns` turns, then `build_prompt`."""
    kept = list(history)[-renderer.history_turns :] if renderer.history_turns > 0 else []
    return build_prompt(
        renderer.tokenizer,
        prompt_format=renderer.prompt_format,
        persona=renderer.persona,
        history=kept,
        text=text,
        max_positions=renderer.max_positions,
        max_new_tokens=renderer.max_new_tokens,
    )


def reply_text(renderer: Renderer, text: str, reply: str, *, persona: bool = True) -> str:
    """What follows the generation prompt when the bot answers `text` with `reply`: the
    cleaned reply and the format's end of turn, as text."""
    tokenizer = renderer.tokenizer
    specials = list(tokenizer.all_special_tokens)
    # Drafts are one line without special tokens (clean_reply): train on the same shape.
    clean = sanitize(reply, specials)
    if renderer.prompt_format == "plain":
        return f" {clean}\n"
    eos = str(tokenizer.eos_token)
    if renderer.prompt_format == "dialogpt":
        return clean + eos
    system = sanitize(renderer.persona, specials) if persona else ""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": sanitize(text, specials)})
    prefix = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": clean}], tokenize=False
    )
    assert isinstance(prefix, str) and isinstance(full, str)
    if not full.startswith(prefix):
        raise ValueError(
            "this chat template renders an answered conversation differently from its "
            "generation prompt, so the reply cannot be told apart; set prompt_format = 'plain'"
        )
    rest = full[len(prefix) :]
    # The turn ends at EOS (what stops generation); anything after it (a line break before
    # the next turn) is never generated.
    end = rest.find(eos, rest.find(clean) + len(clean) if clean else 0)
    return rest[: end + len(eos)] if end >= 0 else rest.rstrip() + eos


def reply_ids(renderer: Renderer, text: str, reply: str, *, persona: bool = True) -> list[int]:
    """`reply_text` as token ids, ending with the end-of-turn token."""
    continuation = reply_text(renderer, text, reply, persona=persona)
    return list(renderer.tokenizer.encode(continuation, add_special_tokens=False))


def render_example(
    renderer: Renderer, history: Sequence[Turn], text: str, reply: str
) -> Example | None:
    """Prompt + reply, with the prompt masked; None when the reply is empty once cleaned."""
    if not sanitize(reply, list(renderer.tokenizer.all_special_tokens)):
        return None
    prompt = render_prompt(renderer, history, text)
    target = reply_ids(renderer, text, reply, persona=not prompt.persona_dropped)
    # A reply longer than max_new_tokens still trains, up to the model's last position.
    target = target[: renderer.max_positions - len(prompt.input_ids)]
    if not target:
        return None
    ids = (*prompt.input_ids, *target)
    labels = (*([IGNORE_INDEX] * len(prompt.input_ids)), *target)
    return Example(ids, labels)


def conversation_examples(renderer: Renderer, conversation: Conversation) -> list[Example]:
    """One example per target bot turn that answers a user turn (as the drafter would have)."""
    turns = conversation.turns
    examples = []
    for i, turn in enumerate(turns):
        if not conversation.targets[i] or i == 0 or turns[i - 1].role is not Role.USER:
            continue
        example = render_example(renderer, turns[: i - 1], turns[i - 1].text, turn.text)
        if example is not None:
            examples.append(example)
    return examples


def prompt_text(renderer: Renderer, history: Sequence[Turn], text: str) -> str:
    """The generation prompt as text (for trainers that tokenize themselves, like TRL's)."""
    decoded = renderer.tokenizer.decode(
        list(render_prompt(renderer, history, text).input_ids), skip_special_tokens=False
    )
    assert isinstance(decoded, str)
    return decoded
