from __future__ import annotations

import pytest

from bot.safety.pii import EMAIL, PiiCheck, find_cards, find_phones, luhn_valid
from bot.safety.registry import Limits


def flags(text: str) -> tuple[str, ...]:
    return PiiCheck(Limits()).check(text)


@pytest.mark.parametrize(
    "text",
    [
        "mail me at jane.doe+orders@example.co.uk",
        "JANE@EXAMPLE.COM is my email",
        "contact essaypro at gmail dot com",
        "reach me: bob [at] mail [dot] net",
    ],
)
def test_emails_are_found(text: str) -> None:
    assert "pii_email" in flags(text)


@pytest.mark.parametrize(
    "text", ["hey @ShopCo", "@mike_t look", "email@ me", "meet at the shop, dot on time"]
)
def test_mentions_and_prose_are_not_emails(text: str) -> None:
    assert "pii_email" not in flags(text)
    assert not EMAIL.search(text)


@pytest.mark.parametrize(
    "text",
    [
        "+44 20 7946 0958",
        "whatsapp +49 151 23456789 for info",
        "call me on +1 (555) 123-4567",
        "(555) 123-4567",
        "my cell is 555-123-4567",
        "555.123.4567",
        "my new number is 07700 900123, pls update it",
        "0176 12345678",
        "06 12 34 56 78",
        "0044 20 7946 0958",
        "call me on 5551234",
        "text me 07700900123",
    ],
)
def test_phone_numbers_are_found(text: str) -> None:
    assert flags(text) == ("pii_phone",), text


@pytest.mark.parametrize(
    "text",
    [
        "where is order #1234567890",
        "order 12345678901 still not here",
        "my order number is 98765432",
        "tracking 1Z999AA10123456784",
        "ordered on 2024-03-15, arrived 15/03/2024 or 15.03.2024?",
        "it cost $1,299.99 or €1299 or 1 299,00 €",
        "open 10:30-18:45 mon-fri",
        "I ordered 2 items 3 days ago, 300% markup, lose 10kg",
        "in stock since 2019-2024",
        "ticket 4455667788",
        "invoice no. 0123456789",
    ],
)
def test_order_numbers_dates_and_prices_are_not_pii(text: str) -> None:
    assert flags(text) == (), text


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4012888888881881",
        "5555 5555 5555 4444",
        "378282246310005",
        "6011111111111117",
    ],
)
def test_card_numbers_are_found(number: str) -> None:
    assert flags(f"my card is {number} pls fix") == ("pii_card",)


@pytest.mark.parametrize(
    "text",
    [
        "my card is 4111 1111 1111 1112",  # Luhn fails
        "ref 7992739871300000003",  # Luhn holds but no card network starts with 7
        "order 4111111111111111",  # the shop's own order number, however it looks
        "#4111111111111111",
    ],
)
def test_card_false_positives_are_avoided(text: str) -> None:
    assert find_cards(text) == []
    assert "pii_card" not in flags(text)


def test_card_digits_do_not_also_count_as_a_phone() -> None:
    assert find_phones("call me, card 4111 1111 1111 1111") == []


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("79927398713", True),
        ("79927398710", False),
        ("4111111111111111", True),
        ("0", True),
        ("", False),
        ("12a4", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


def test_several_kinds_in_one_text_keep_a_fixed_order() -> None:
    text = "card 4111111111111111, call +44 7700 900456 or a@b.io"
    assert flags(text) == ("pii_email", "pii_phone", "pii_card")
