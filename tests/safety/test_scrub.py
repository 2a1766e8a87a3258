"""Scrubbing personal data out of texts that leave the database (training exports)."""

from __future__ import annotations

import pytest

from bot.safety.pii import iban_valid, scrub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+orders@example.co.uk today", "mail <email> today"),
        ("reach me: bob [at] mail [dot] net", "reach me: <email>"),
        ("call me on +44 20 7946 0958.", "call me on <phone>."),
        ("whatsapp +49 151 23456789 for info", "whatsapp <phone> for info"),
        ("card 4111 1111 1111 1111 please", "card <card> please"),
        ("IBAN DE89 3704 0044 0532 0130 00, thanks", "IBAN <iban>, thanks"),
        ("iban gb82west12345698765432", "iban <iban>"),
        ("see https://shop.test/track?id=991&mail=a@b.io.", "see <url>."),
        ("(https://shop.test/t?x=1)", "(<url>)"),
    ],
)
def test_personal_data_becomes_a_placeholder(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "where is order #1234567890?",
        "order 1234567890 from 2024-01-02 cost $12.50",
        "see https://shop.test/returns for the form",  # no query string: kept
        "ticket AB12 CDEF GHIJ KLMN is open",  # IBAN-shaped, checksum fails
        "hello @ShopCo",
    ],
)
def test_ordinary_support_text_is_left_alone(text: str) -> None:
    assert scrub(text) == text


def test_iban_checksum() -> None:
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not iban_valid("GB82")
