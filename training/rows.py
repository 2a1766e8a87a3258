"""Read the exported JSONL files into plain rows: conversations (SFT) and preference pairs.

SFT line: `{"messages": [{"role": "user"|"bot", "text": "...", "target": false?}, ...]}`; every
bot turn is a training target unless it says `"target": false`. Preference line: `{"messages":
[... ending with the user turn], "chosen": "...", "rejected": "...", "kind": ...}`. Other keys
(account, source) are ignored. A malformed line stops the read with its file and line number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.domain import Role, Turn
from bot.errors import InputError


@dataclass(frozen=True, slots=True)
class Conversation:
    """Turns oldest first; `targets[i]` says whether bot turn i is trained on."""

    turns: tuple[Turn, ...]
    targets: tuple[bool, ...]

    @property
    def key(self) -> str:
        """What the eval gate's held-out split hashes (`training.evaluate.is_heldout`): the
        whole conversation's text, so every reply in it falls on the same side."""
        return "\n".join(turn.text for turn in self.turns)


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """A user message after its history, a preferred reply and a worse one."""

    history: tuple[Turn, ...]
    text: str
    chosen: str
    rejected: str
    kind: str | None = None


def file_hash(path: Path) -> str:
    """sha256 of a data file: what the registry records as the adapter's data hash."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InputError(f"{path} does not exist; pass an exported .jsonl file with --data")
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON ({exc.msg}); fix or drop it") from exc
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number}: expected a JSON object; fix or drop it")
            yield number, row


def _turns(path: Path, number: int, messages: object) -> tuple[list[Turn], list[bool]]:
    where = f"{path}:{number}"
    if not isinstance(messages, list):
        raise InputError(f"{where}: 'messages' must be a list of turns; fix or drop the line")
    turns: list[Turn] = []
    targets: list[bool] = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        text = message.get("text") if isinstance(message, dict) else None
        if role not in ("user", "bot") or not isinstance(text, str):
            raise InputError(
                f"{where}: every turn needs a role of 'user' or 'bot' and a text; fix or drop it"
            )
        turns.append(Turn(Role(role), text))
        targets.append(role == "bot" and message.get("target", True) is not False)
    return turns, targets


def read_conversations(path: Path) -> list[Conversation]:
    """The SFT file's conversations, in file order."""
    conversations = []
    for number, row in _lines(path):
        turns, targets = _turns(path, number, row.get("messages"))
        conversations.append(Conversation(tuple(turns), tuple(targets)))
    return conversations


def read_preferences(path: Path) -> list[PreferencePair]:
    """The preference file's pairs, in file order."""
    pairs = []
    for number, row in _lines(path):
        turns, _ = _turns(path, number, row.get("messages"))
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if not turns or turns[-1].role is not Role.USER:
            raise InputError(
                f"{path}:{number}: 'messages' must end with the user's turn; fix or drop the line"
            )
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            raise InputError(f"{path}:{number}: needs 'chosen' and 'rejected' texts; fix it")
        kind = row.get("kind")
        pairs.append(
            PreferencePair(
                tuple(turns[:-1]),
                turns[-1].text,
                chosen,
                rejected,
                str(kind) if kind is not None else None,
            )
        )
    return pairs
