"""Training examples: the prompt is the drafter's prompt token for token; only the reply and
its end of turn are labelled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from bot.domain import DraftRequest, ReplyStyle, Role, Turn
from bot.nlp.generate import ReplyGenerator
from bot.nlp.models import ModelHost
from bot.nlp.prompts import resolve_format
from training.render import (
    IGNORE_INDEX,
    Example,
    Renderer,
    conversation_examples,
    prompt_text,
    render_example,
    renderer_for,
)
from training.rows import Conversation

STYLE = ReplyStyle(max_new_tokens=12, do_sample=False, persona="You are a helpful shop assistant.")
HISTORY = [
    Turn(Role.USER, "hi"),
    Turn(Role.BOT, "Hello! How can I help?"),
    Turn(Role.USER, "Where is my order?"),
    Turn(Role.BOT, "Your order shipped yesterday."),
]
TEXT = "Can I return these shoes?"
REPLY = "Of course, returns are free."


def renderer(host: ModelHost, style: ReplyStyle = STYLE, history_turns: int = 2) -> Renderer:
    return renderer_for(host.tokenizer, host.model.config, style, history_turns)


def generation_prompt(
    host: ModelHost, style: ReplyStyle, history: Sequence[Turn], text: str
) -> tuple[int, ...]:
    """What the drafter feeds the model for this request (the pipeline passes the history
    already cut to history_turns)."""
    prompt_format = resolve_format(style.prompt_format, host.tokenizer)
    concrete = replace(style, prompt_format=prompt_format)
    with ReplyGenerator(host, concrete) as generator:
        request = DraftRequest(tuple(history), text, style=concrete)
        return generator._prompt(concrete, prompt_format, request).input_ids


def split(example: Example) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(prompt ids, reply ids) by the labels."""
    n = next(i for i, label in enumerate(example.labels) if label != IGNORE_INDEX)
    assert all(label == IGNORE_INDEX for label in example.labels[:n])
    assert example.labels[n:] == example.input_ids[n:]  # every reply token is a target
    return example.input_ids[:n], example.input_ids[n:]


@pytest.fixture
def chat_host(tiny_chat_model_dir: Path) -> ModelHost:
    return ModelHost.load(str(tiny_chat_model_dir), device="cpu")


@pytest.mark.parametrize("history_turns", [0, 2, 6])
def test_plain_examples_start_with_the_generation_prompt(
    tiny_host: ModelHost, history_turns: int
) -> None:
    example = render_example(renderer(tiny_host, history_turns=history_turns), HISTORY, TEXT, REPLY)
    assert example is not None
    prompt, reply = split(example)
    kept = HISTORY[-history_turns:] if history_turns else []
    assert prompt == generation_prompt(tiny_host, STYLE, kept, TEXT)
    # The plain format's turn ends at the line break, where the drafter stops a plain row.
    assert tiny_host.tokenizer.decode(list(reply)) == f" {REPLY}\n"


def test_chat_examples_follow_the_template_and_end_at_eos(chat_host: ModelHost) -> None:
    r = renderer(chat_host)
    assert r.prompt_format == "chat"
    example = render_example(r, HISTORY, TEXT, REPLY)
    assert example is not None
    prompt, reply = split(example)
    assert prompt == generation_prompt(chat_host, STYLE, HISTORY[-2:], TEXT)
    tokenizer = chat_host.tokenizer
    assert reply[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(list(reply)) == f"{REPLY}{tokenizer.eos_token}"
    # Prompt + reply is the template's own rendering of the answered conversation.
    messages = [
        {"role": "system", "content": STYLE.persona},
        {"role": "user", "content": HISTORY[2].text},
        {"role": "assistant", "content": HISTORY[3].text},
        {"role": "user", "content": TEXT},
        {"role": "assistant", "content": REPLY},
    ]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    assert isinstance(full, str)
    rendered = tokenizer.decode(list(example.input_ids))
    assert isinstance(rendered, str) and full.startswith(rendered)
    assert prompt_text(r, HISTORY, TEXT) == tokenizer.decode(list(prompt))


def test_dialogpt_replies_end_with_eos(tiny_host: ModelHost) -> None:
    style = replace(STYLE, prompt_format="dialogpt")
    example = render_example(renderer(tiny_host, style), HISTORY, TEXT, REPLY)
    assert example is not None
    prompt, reply = split(example)
    assert prompt == generation_prompt(tiny_host, style, HISTORY[-2:], TEXT)
    assert tiny_host.tokenizer.decode(list(reply)) == REPLY + tiny_host.tokenizer.eos_token


def test_a_long_history_is_cut_from_the_left_as_generation_cuts_it(tiny_host: ModelHost) -> None:
    # 1,000 new tokens leave 24 of GPT-2's 1,024 positions for the prompt.
    style = replace(STYLE, max_new_tokens=1000)
    history = [
        Turn(Role.USER if i % 2 == 0 else Role.BOT, f"message number {i}") for i in range(30)
    ]
    example = render_example(renderer(tiny_host, style, history_turns=30), history, TEXT, REPLY)
    assert example is not None
    prompt, _ = split(example)
    assert len(prompt) <= 24
    assert prompt == generation_prompt(tiny_host, style, history, TEXT)
    assert len(example) <= 1024


def test_replies_are_cleaned_like_drafts(tiny_host: ModelHost) -> None:
    example = render_example(renderer(tiny_host), [], TEXT, "Line one\nline two <|endoftext|>")
    assert example is not None
    assert tiny_host.tokenizer.decode(list(split(example)[1])) == " Line one line two\n"
    assert render_example(renderer(tiny_host), [], TEXT, " \n ") is None


def test_only_target_replies_to_a_user_turn_become_examples(tiny_host: ModelHost) -> None:
    turns = (
        Turn(Role.BOT, "Welcome!"),  # nothing to answer
        Turn(Role.USER, "hi"),
        Turn(Role.BOT, "Hello!"),  # the one example
        Turn(Role.BOT, "Anything else?"),  # follows a bot turn
        Turn(Role.USER, "no thanks"),
        Turn(Role.BOT, "Bye!"),  # marked as context
    )
    conversation = Conversation(turns, (True, False, True, True, False, False))
    (example,) = conversation_examples(renderer(tiny_host), conversation)
    assert tiny_host.tokenizer.decode(list(split(example)[1])) == " Hello!\n"
