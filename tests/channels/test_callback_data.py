"""Signed moderation callback data: round trips, and everything a client could forge refused."""

from __future__ import annotations

import random
from typing import get_args

import pytest

from bot.channels.callback_data import (
    MAX_BYTES,
    MAX_DRAFT_ID,
    Action,
    BadCallbackData,
    derive_key,
    sign,
    verify,
)

KEY = derive_key("123456:AAExampleBotToken")
OTHER_BOT_KEY = derive_key("654321:AAAnotherBotToken")
ACTIONS: tuple[Action, ...] = get_args(Action)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("draft_id", [0, 1, 123, 10**9, MAX_DRAFT_ID])
def test_round_trip(action: Action, draft_id: int) -> None:
    data = sign(action, draft_id, KEY)
    assert verify(data, KEY) == (action, draft_id)
    assert len(data.encode("utf-8")) <= MAX_BYTES
    assert data.isascii()


def test_format_is_compact_and_versioned() -> None:
    data = sign("approve", 123, KEY)
    prefix, code, draft_id, sig = data.split(":")
    assert (prefix, code, draft_id) == ("m1", "a", "123")
    assert len(sig) == 16
    assert sign("edit", 1, KEY).startswith("m1:e:1:")
    assert sign("reject", 1, KEY).startswith("m1:r:1:")


def test_longest_data_fits_in_64_bytes() -> None:
    assert len(sign("reject", MAX_DRAFT_ID, KEY).encode("utf-8")) == 41


def test_random_ids_always_fit() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        draft_id = rng.randint(0, MAX_DRAFT_ID)
        action = rng.choice(ACTIONS)
        data = sign(action, draft_id, KEY)
        assert len(data.encode("utf-8")) <= MAX_BYTES
        assert verify(data, KEY) == (action, draft_id)


def test_is_bad_callback_data_a_value_error() -> None:
    assert issubclass(BadCallbackData, ValueError)


def test_tampered_id_is_refused() -> None:
    data = sign("approve", 123, KEY)
    with pytest.raises(BadCallbackData, match="signature"):
        verify(data.replace(":123:", ":124:"), KEY)


@pytest.mark.parametrize("code", ["e", "r"])
def test_tampered_action_is_refused(code: str) -> None:
    data = sign("approve", 123, KEY)
    with pytest.raises(BadCallbackData, match="signature"):
        verify(data.replace("m1:a:", f"m1:{code}:"), KEY)


def test_tampered_signature_is_refused() -> None:
    data = sign("approve", 123, KEY)
    sig = data.rsplit(":", 1)[1]
    for i in range(len(sig)):
        flipped = "A" if sig[i] != "A" else "B"
        forged = data[: -len(sig)] + sig[:i] + flipped + sig[i + 1 :]
        with pytest.raises(BadCallbackData):
            verify(forged, KEY)


def test_another_bots_data_is_refused() -> None:
    with pytest.raises(BadCallbackData, match="signature"):
        verify(sign("approve", 123, OTHER_BOT_KEY), KEY)


def test_signature_from_another_id_is_refused() -> None:
    sig = sign("approve", 5, KEY).rsplit(":", 1)[1]
    with pytest.raises(BadCallbackData):
        verify(f"m1:a:6:{sig}", KEY)


@pytest.mark.parametrize(
    "data",
    [
        "",
        ":",
        "m1",
        "m1:a",
        "m1:a:123",
        "m1:a:123:",
        "m1:x:123:AAAAAAAAAAAAAAAA",  # unknown action
        "m1:approve:123:AAAAAAAAAAAAAAAA",
        "m2:a:123:AAAAAAAAAAAAAAAA",  # unknown version
        "m1:a:-1:AAAAAAAAAAAAAAAA",
        "m1:a:0123:AAAAAAAAAAAAAAAA",  # leading zero
        "m1:a:1.5:AAAAAAAAAAAAAAAA",
        "m1:a:١٢٣:AAAAAAAAAAAAAAAA",  # Arabic-Indic digits: int() would accept them
        "m1:a:9223372036854775808:AAAAAAAAAAAAAAAA",  # 2**63
        "m1:a:99999999999999999999:AAAAAAAAAAAAAAAA",  # 20 digits
        "m1:a:123:AAAAAAAAAAAAAAA",  # 15-char signature
        "m1:a:123:AAAAAAAAAAAAAAAAA",  # 17-char signature
        "m1:a:123:AAAAAAAAAAAAAAA=",
        "m1:a:123:AAAAAAAAAAAAAAAA\n",
        " m1:a:123:AAAAAAAAAAAAAAAA",
        "m1:a:123:AAAAAAAAAAAAAAAA:extra",
        "m1:a:123\x00:AAAAAAAAAAAAAAAA",
        "\x00" * 10,
        "é" * 40,  # 40 characters, 80 bytes
        "😀" * 10,
        "x" * 65,
        "x" * 1_000_000,
        "\ud83d",  # lone surrogate
    ],
)
def test_garbage_is_refused(data: str) -> None:
    with pytest.raises(BadCallbackData):
        verify(data, KEY)


def test_valid_data_with_a_non_ascii_twin_is_refused() -> None:
    data = sign("approve", 123, KEY)
    with pytest.raises(BadCallbackData):
        verify(data.replace("123", "１２３"), KEY)  # fullwidth digits


def test_non_string_is_refused() -> None:
    with pytest.raises(BadCallbackData, match="string"):
        verify(None, KEY)  # type: ignore[arg-type]
    with pytest.raises(BadCallbackData, match="string"):
        verify(b"m1:a:1:AAAAAAAAAAAAAAAA", KEY)  # type: ignore[arg-type]


def test_sign_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        sign("delete", 1, KEY)
    with pytest.raises(ValueError, match="unknown action"):
        sign("a", 1, KEY)  # the code is not the action
    with pytest.raises(ValueError, match="draft_id"):
        sign("approve", -1, KEY)
    with pytest.raises(ValueError, match="draft_id"):
        sign("approve", MAX_DRAFT_ID + 1, KEY)
    with pytest.raises(TypeError, match="draft_id"):
        sign("approve", True, KEY)
    with pytest.raises(TypeError, match="draft_id"):
        sign("approve", "1", KEY)  # type: ignore[arg-type]


def test_keys() -> None:
    assert derive_key("token") == derive_key("token")
    assert derive_key("token") != derive_key("token2")
    assert len(derive_key("token")) == 32
    assert derive_key("token") != b"token"
    with pytest.raises(ValueError, match="empty"):
        derive_key("")
    for weak in (b"", b"short"):
        with pytest.raises(ValueError, match="derive_key"):
            sign("approve", 1, weak)
        with pytest.raises(ValueError, match="derive_key"):
            verify("m1:a:1:AAAAAAAAAAAAAAAA", weak)
