"""Signed callback data for the moderation buttons (approve / edit / reject a draft).

A button's callback data comes back from the client and is never trusted: anyone can send any
string up to 64 bytes. Each button therefore carries an HMAC over its action and draft id, keyed
by a secret derived from the bot token, so data forged by a client or minted by another bot is
refused. The format is::

    m1:<a|e|r>:<draft id>:<sig>

where `sig` is the first 16 characters of base64url(HMAC-SHA256(key, "m1:<a|e|r>:<draft id>")),
96 bits. The longest (draft id 2**63 - 1) is 41 bytes, within Telegram's 64.

What the signature does *not* prove: who pressed the button (check that the presser is a
moderator), or that the draft is still pending (a button can be pressed twice, or after another
moderator acted); the caller checks both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final, Literal

Action = Literal["approve", "edit", "reject"]

MAX_BYTES: Final = 64
"""Telegram's limit on callback data, in UTF-8 bytes."""

MAX_DRAFT_ID: Final = 2**63 - 1

_VERSION: Final = "m1"
_SIG_CHARS: Final = 16
_MIN_KEY_BYTES: Final = 16
_KEY_LABEL: Final = b"autoreply/callback-data/v1"
_CODES: Final[dict[str, str]] = {"approve": "a", "edit": "e", "reject": "r"}
_ACTIONS: Final[dict[str, Action]] = {"a": "approve", "e": "edit", "r": "reject"}
# ASCII only: `[0-9]`, not `\d`, which also matches other scripts' digits. No leading zeros, so
# every (action, id) has exactly one encoding.
_FORMAT: Final = re.compile(
    rf"{_VERSION}:(?P<code>[aer]):(?P<id>0|[1-9][0-9]{{0,18}}):(?P<sig>[A-Za-z0-9_-]{{{_SIG_CHARS}}})"
)


class BadCallbackData(ValueError):
    """Callback data that is malformed, too long, for an unknown action, or wrongly signed."""


def derive_key(secret: str) -> bytes:
    """The signing key for callback data, derived from the bot token.

    A fixed label keeps this key apart from any other use of the token; a different token (that
    is, another bot) gives an unrelated key.
    """
    if not secret:
        raise ValueError("derive_key needs the bot token (or another secret); got an empty one")
    return hmac.new(_KEY_LABEL, secret.encode("utf-8"), hashlib.sha256).digest()


def sign(action: str, draft_id: int, key: bytes) -> str:
    """Callback data for pressing `action` ("approve", "edit" or "reject") on a draft."""
    _check_key(key)
    code = _CODES.get(action)
    if code is None:
        raise ValueError(f"unknown action {action!r}; expected one of {sorted(_CODES)}")
    if isinstance(draft_id, bool) or not isinstance(draft_id, int):
        raise TypeError(f"draft_id must be an int, got {type(draft_id).__name__}")
    if not 0 <= draft_id <= MAX_DRAFT_ID:
        raise ValueError(f"draft_id must be in 0..2**63-1, got {draft_id}")
    payload = f"{_VERSION}:{code}:{draft_id}"
    return f"{payload}:{_signature(key, payload)}"


def verify(data: str, key: bytes) -> tuple[Action, int]:
    """The (action, draft id) that `data` was signed for; `BadCallbackData` if it is not ours."""
    _check_key(key)
    if not isinstance(data, str):
        raise BadCallbackData(f"callback data must be a string, got {type(data).__name__}")
    # Checking the characters first keeps a huge string from being encoded.
    if len(data) > MAX_BYTES or len(data.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise BadCallbackData(f"callback data is longer than {MAX_BYTES} bytes")
    match = _FORMAT.fullmatch(data)
    if match is None:
        raise BadCallbackData(f"callback data {data!r} is not in the {_VERSION} format")
    draft_id = int(match["id"])
    if draft_id > MAX_DRAFT_ID:
        raise BadCallbackData(f"draft id in callback data {data!r} is out of range")
    payload = data[: match.start("sig") - 1]
    if not hmac.compare_digest(_signature(key, payload), match["sig"]):
        raise BadCallbackData(f"callback data {data!r} has a bad signature")
    return _ACTIONS[match["code"]], draft_id


def _signature(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:_SIG_CHARS]


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < _MIN_KEY_BYTES:
        raise ValueError(
            f"the callback key must be at least {_MIN_KEY_BYTES} bytes; build it with derive_key()"
        )
