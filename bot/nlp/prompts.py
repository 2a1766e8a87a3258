"""Prompt building and reply clean-up: pure functions, the tokenizer is passed in.

Two prompt formats (`Settings.prompt_format`):

* ``plain`` - the persona, a blank line, then one line per turn tagged ``User:`` or ``Bot:``,
  ending with ``Bot:`` for the model to continue. The tags are fixed rather than the configured
  bot name so that renaming the bot does not change what a trained adapter saw; the training
  code renders examples with `render_plain` to stay in step.
* ``dialogpt`` - turns joined by the EOS token, ending with the user's message and EOS, which is
  how DialoGPT was trained on Reddit threads. The persona is left out: DialoGPT never saw an
  instruction turn and would answer it as if a user had said it.
* ``chat`` - the tokenizer's own chat template: the persona as the system turn, the history as
  user and assistant turns, and the generation prompt. Instruction-tuned models (SmolLM2) were
  trained on exactly this; fed ``User:``/``Bot:`` lines they ramble. The persona is always
  passed, since some templates (SmolLM2's) insert a default system prompt of their own.
* ``auto`` (the default) - ``chat`` when the tokenizer has a template, else ``plain``. GPT-2 has
  none. `resolve_format` decides.

Prompts are cut from the left by tokens so that prompt + max_new_tokens fits the model's
positions (GPT-2: 1,024; longer inputs raise IndexError inside `generate`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from bot.domain import Role, Turn

PromptFormat = Literal["plain", "dialogpt", "chat"]
PROMPT_FORMATS = ("auto", "plain", "dialogpt", "chat")


def resolve_format(name: str, tokenizer: PreTrainedTokenizerBase) -> PromptFormat:
    """The concrete format for a configured name; `auto` looks at the tokenizer."""
    if name == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    if name == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "prompt_format 'chat' needs a tokenizer with a chat template, and this model's has "
            "none; use 'auto' or 'plain'"
        )
    if name in ("plain", "dialogpt", "chat"):
        return name  # type: ignore[return-value]
    raise ValueError(f"unknown prompt format {name!r}; use one of {', '.join(PROMPT_FORMATS)}")


USER_TAG = "User:"
BOT_TAG = "Bot:"
_TAGS = {Role.USER: USER_TAG, Role.BOT: BOT_TAG}
# Special-token spellings of GPT-2 style (<|endoftext|>) and sentencepiece style models.
_SPECIAL = re.compile(r"<\|[^<>|]{0,40}\|>|</?s>|<pad>|<unk>")


@dataclass(frozen=True, slots=True)
class Prompt:
    """Token ids for one request, and how much had to be cut to make them fit."""

    input_ids: tuple[int, ...]
    dropped_turns: int = 0  # oldest history turns left out
    message_cut: bool = False  # the left of the current message was cut
    persona_dropped: bool = False

    @property
    def truncated(self) -> bool:
        return bool(self.dropped_turns) or self.message_cut or self.persona_dropped


def sanitize(text: str, special_tokens: Sequence[str] = ()) -> str:
    """One line of model-safe text from user input.

    Control characters (NUL, newlines) go, so a message cannot open a fake ``Bot:`` line, and
    special-token strings go, because the tokenizer would parse ``<|endoftext|>`` typed by a user
    as the real token. Format characters (zero-width joiners, RTL marks) stay: they belong to
    emoji and right-to-left scripts.
    """
    for token in special_tokens:
        if token:
            text = text.replace(token, " ")
    text = _SPECIAL.sub(" ", text)
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") else ch for ch in text
    )
    return " ".join(cleaned.split())


def render_plain(persona: str, history: Sequence[Turn], text: str | None = None) -> str:
    """The plain format as text: persona, tagged turns and, when `text` is given, the open
    ``Bot:`` line after it. Training renders examples with this function."""
    lines = [f"{_TAGS[turn.role]} {sanitize(turn.text)}" for turn in history]
    if text is not None:
        lines += [f"{USER_TAG} {sanitize(text)}", BOT_TAG]
    return _header_text(persona) + "\n".join(lines)


def _header_text(persona: str, special_tokens: Sequence[str] = ()) -> str:
    persona = sanitize(persona, special_tokens)
    return f"{persona}\n\n" if persona else ""


def build_prompt(
    tokenizer: PreTrainedTokenizerBase,
    *,
    prompt_format: PromptFormat,
    persona: str,
    history: Sequence[Turn],
    text: str,
    max_positions: int,
    max_new_tokens: int,
) -> Prompt:
    """Token ids for `text` after `history` (oldest first), cut to fit the context window.

    Cutting order: the oldest history turns go first, whole; then, if the message alone is too
    long, the left of the message (its newest words are the ones to answer). The persona is kept
    unless it would take more than half of the room and crowd out the message: then it goes.
    """
    budget = max_positions - max_new_tokens
    eos = tokenizer.eos_token_id
    if not isinstance(eos, int):
        raise ValueError("the tokenizer has no eos_token; prompts need one")
    specials = list(tokenizer.all_special_tokens)

    def encode(part: str) -> list[int]:
        return list(tokenizer.encode(part, add_special_tokens=False)) if part else []

    message = sanitize(text, specials)
    if prompt_format == "chat":
        return _chat_prompt(tokenizer, persona, history, message, specials, budget)
    if prompt_format == "plain":
        header = encode(_header_text(persona, specials))
        turns = [encode(f"{_TAGS[t.role]} {sanitize(t.text, specials)}\n") for t in history]
        # Encoded apart so the message body can be cut by tokens without touching the tags;
        # GPT-2's pre-tokenizer splits at these boundaries anyway, so the ids are the same.
        before, body, after = encode(USER_TAG), encode(f" {message}"), encode(f"\n{BOT_TAG}")
    elif prompt_format == "dialogpt":
        header = []
        turns = [[*encode(sanitize(t.text, specials)), eos] for t in history]
        before, body, after = [], encode(message), [eos]
    else:  # pragma: no cover - Settings validates the literal
        raise ValueError(f"unknown prompt format {prompt_format!r}")

    fixed = len(before) + len(after)
    if budget < fixed + 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in {max_positions} "
            "positions; lower AUTOREPLY_MAX_NEW_TOKENS"
        )
    room = budget - fixed  # for persona, history and message body
    persona_dropped = False
    if len(header) > room // 2 and len(header) + len(body) > room:
        header, persona_dropped = [], True

    dropped = 0
    used = len(header) + sum(map(len, turns)) + fixed + len(body)
    while turns and used > budget:
        used -= len(turns.pop(0))
        dropped += 1
    message_cut = used > budget
    if message_cut:
        body = body[used - budget :]
    ids = [*header, *(i for turn in turns for i in turn), *before, *body, *after]
    return Prompt(tuple(ids), dropped, message_cut, persona_dropped)


def _chat_prompt(
    tokenizer: PreTrainedTokenizerBase,
    persona: str,
    history: Sequence[Turn],
    message: str,
    specials: Sequence[str],
    budget: int,
) -> Prompt:
    """The chat template, cut like the other formats: oldest turns first, then the persona if
    it would take more than half the room, then the left of the message."""
    system = sanitize(persona, specials)
    roles = {Role.USER: "user", Role.BOT: "assistant"}
    turns = [{"role": roles[t.role], "content": sanitize(t.text, specials)} for t in history]

    def render(system: str, turns: list[dict[str, str]], message: str) -> list[int]:
        messages = [{"role": "system", "content": system}] if system else []
        messages += [*turns, {"role": "user", "content": message}]
        # Rendered as text, then encoded: the template already holds every special token.
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert isinstance(text, str)
        return list(tokenizer.encode(text, add_special_tokens=False))

    ids = render(system, turns, message)
    dropped = 0
    while turns and len(ids) > budget:
        turns.pop(0)
        dropped += 1
        ids = render(system, turns, message)
    persona_dropped = False
    if len(ids) > budget and system and len(render(system, [], "")) > budget // 2:
        system, persona_dropped = "", True
        ids = render(system, turns, message)
    message_cut = False
    body = list(tokenizer.encode(message, add_special_tokens=False))
    while len(ids) > budget and body:
        # Keep the newest words; decoding a cut can merge tokens, so check again.
        body = body[len(ids) - budget :]
        decoded = tokenizer.decode(body, skip_special_tokens=True)
        message = decoded if isinstance(decoded, str) else "".join(decoded)
        message_cut = True
        ids = render(system, turns, message)
        if len(ids) > budget:
            body = body[1:]
    if len(ids) > budget:
        raise ValueError(
            f"the chat template alone needs {len(ids)} of {budget} positions; lower "
            "AUTOREPLY_MAX_NEW_TOKENS"
        )
    return Prompt(tuple(ids), dropped, message_cut, persona_dropped)


# --- reply clean-up --------------------------------------------------------------------------

_JUNK = ("Cc", "Cs")  # control characters, lone surrogates
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")


def _drop_junk(ch: str) -> str:
    if ch == "\ufffd" or unicodedata.category(ch) in _JUNK:
        return " " if ch in "\t\r\v\f" else ""
    return ch


def clean_reply(raw: str, *, bot_name: str, stopped: bool) -> str:
    """Turn the model's continuation into one sendable line; "" means use the fallback.

    `stopped` is True when the model ended its turn itself (EOS or a line break) and False when
    it ran into the token cap. A capped reply is cut after its last complete sentence, and is
    empty when it has none, since half a sentence is worse than the fallback. A reply the model
    ended itself is kept whole even without final punctuation ("sure thing 👍" is fine).
    Mentions of the bot's name inside the text stay: only a leading ``Name:`` tag or a trailing
    ``- Name`` signature is removed, because deleting the word mid-sentence garbles it.
    """
    text = _SPECIAL.sub(" ", raw).lstrip()
    text = text.split("\n", 1)[0]
    # Control bytes and U+FFFD (a multi-byte character cut between tokens) are never meant.
    text = "".join(_drop_junk(ch) for ch in text)
    names = sorted({BOT_TAG[:-1], USER_TAG[:-1], bot_name.strip()}, key=len, reverse=True)
    alternatives = "|".join(re.escape(name) for name in names if name)
    # Another speaker's tag later in the line means the model went on writing the dialogue.
    marker = re.compile(rf"(?:^|(?<=\s))(?:{alternatives})\s?:", re.IGNORECASE)
    own = "|".join(re.escape(name) for name in {BOT_TAG[:-1], bot_name.strip()} if name)
    own_tag = re.compile(rf"^\s*(?:{own})\s*[:,\-–—]\s*", re.IGNORECASE)
    while (stripped := own_tag.sub("", text, count=1)) != text:
        text = stripped
    if (match := marker.search(text)) is not None:
        text = text[: match.start()]
    if bot_name.strip():
        signature = re.compile(rf"\s*[-–—~]\s*{re.escape(bot_name.strip())}\s*$", re.IGNORECASE)
        text = signature.sub("", text)
    text = " ".join(text.split())
    if not stopped:
        ends = list(_SENTENCE_END.finditer(text))
        text = text[: ends[-1].end()] if ends else ""
    if not any(unicodedata.category(ch)[0] not in "PZC" for ch in text):
        return ""  # nothing but punctuation or blanks
    return text
