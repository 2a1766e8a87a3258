"""Personal data in a text: e-mail addresses, phone numbers, payment card numbers and IBANs.

`PiiCheck` flags them for the safety gate; `scrub` replaces them (and URLs with a query
string, which may carry tokens or ids) with placeholders such as `<email>`, for texts
that leave the database as training data.

Tuned against false positives that support traffic is full of: order numbers ("#48213",
"order 1234567890"), dates, prices, times and quantities are not flagged. A bare run of digits
counts as a phone number only with a '+' or '00' prefix, a trunk '0', North-American grouping,
or a phone word ("call", "whatsapp", ...) just before it. Card numbers need 13-19 digits, a
valid Luhn checksum and a first digit a card network uses (2-6); IBANs need a valid mod-97
checksum.
"""

from __future__ import annotations

import re
from typing import ClassVar

from bot.safety.normalize import fold
from bot.safety.registry import Check, Stage

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Spelled out to dodge filters: "name at gmail dot com", "name [at] mail [dot] net".
EMAIL_SPELLED = re.compile(
    r"\b[\w.+-]+\s*(?:\(at\)|\[at\]|\sat\s)\s*[A-Za-z0-9-]+\s*(?:\(dot\)|\[dot\]|\sdot\s)\s*"
    r"(?:com|net|org|io|co|de|fr|uk|info)\b",
    re.IGNORECASE,
)
# A digit run with at most two separators between digits; not glued to a word, '#', a
# currency sign, a decimal point or a unit ("10kg", "300%").
_NUMBER = re.compile(r"(?<![\w#$€£¥+.,/:-])(?:\+|\()?\d(?:[ \-.()]{0,2}\d){6,18}(?![\w%/])")
_CARD = re.compile(r"(?<![\w#.,$€£])\d(?:[ -]?\d){12,18}(?![\w%/])")
_PHONE_WORDS = re.compile(
    r"\b(?:call|ring|phone|tel|telephone|mobile|cell|whats ?app|wa|sms|text|txt|"
    r"(?:my|phone|mobile|cell|new) number|reach me|contact me)\b[^\d]{0,12}$",
    re.IGNORECASE,
)
_ORDER_WORDS = re.compile(
    r"\b(?:order|orders|tracking|track|invoice|ref|reference|ticket|case|account|acct|id"
    r"|no|nr|number|parcel|item|sku|code|serial)\b\W{0,3}$",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
_DATE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")
_NANP = re.compile(r"(?:1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}")
# Country code, check digits, then 11-30 letters or digits, optionally in groups of four.
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_URL_WITH_QUERY = re.compile(r"\bhttps?://[^\s?#]+\?\S*", re.IGNORECASE)
_URL_TRAILER = ".,;:!?)]}'\""  # sentence punctuation after a URL is not part of it

PLACEHOLDERS = {
    "email": "<email>",
    "phone": "<phone>",
    "card": "<card>",
    "iban": "<iban>",
    "url": "<url>",
}


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum that every payment card number satisfies."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_cards(text: str) -> list[tuple[int, int]]:
    """Spans of probable card numbers."""
    spans = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if (
            13 <= len(digits) <= 19
            and digits[0] in "23456"
            and luhn_valid(digits)
            and not _ORDER_WORDS.search(text, 0, m.start())
        ):
            spans.append(m.span())
    return spans


def _is_phone(text: str, start: int, candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    n = len(digits)
    if n > 15:  # E.164 allows at most 15 digits
        return False
    if candidate.startswith("+"):
        return n >= 8
    before = text[max(0, start - 40) : start]
    if _PHONE_WORDS.search(before):
        return n >= 7
    if _ORDER_WORDS.search(before) or _DATE.fullmatch(candidate):
        return False
    if _NANP.fullmatch(candidate):
        return True
    if digits.startswith("00"):  # international prefix, as dialled in Europe
        return n >= 10
    return digits[0] == "0" and 10 <= n <= 12  # national number with trunk prefix


def find_phones(text: str) -> list[tuple[int, int]]:
    """Spans of probable phone numbers (card numbers are excluded first)."""
    for start, end in find_cards(text):
        text = text[:start] + " " * (end - start) + text[end:]
    return [m.span() for m in _NUMBER.finditer(text) if _is_phone(text, m.start(), m.group())]


def iban_valid(text: str) -> bool:
    """The ISO 13616 mod-97 checksum every IBAN satisfies (spaces ignored)."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def find_ibans(text: str) -> list[tuple[int, int]]:
    """Spans of IBANs with a valid checksum."""
    return [m.span() for m in _IBAN.finditer(text) if iban_valid(m.group())]


def _replace(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    for start, end in reversed(spans):
        text = text[:start] + placeholder + text[end:]
    return text


def _url(match: re.Match[str]) -> str:
    url = match.group()
    kept = url.rstrip(_URL_TRAILER)
    return PLACEHOLDERS["url"] + url[len(kept) :]


def scrub(text: str) -> str:
    """`text` with personal data replaced by placeholders (`<email>`, `<phone>`, `<card>`,
    `<iban>`, `<url>`). Uses the same finders as `PiiCheck`, so what the gate flags is what
    gets replaced; URLs go first, since their query strings hold digits and addresses."""
    if "?" in text:
        text = _URL_WITH_QUERY.sub(_url, text)
    if "@" in text:
        text = EMAIL.sub(PLACEHOLDERS["email"], text)
    if "dot" in text.lower():
        text = EMAIL_SPELLED.sub(PLACEHOLDERS["email"], text)
    if _DIGIT.search(text):
        text = _replace(text, find_ibans(text), PLACEHOLDERS["iban"])
        text = _replace(text, find_cards(text), PLACEHOLDERS["card"])
        text = _replace(text, find_phones(text), PLACEHOLDERS["phone"])
    return text


class PiiCheck(Check):
    """Flags e-mail addresses, phone numbers, card numbers and IBANs in inputs and drafts."""

    name = "pii"
    stages: ClassVar[frozenset[Stage]] = frozenset({"input", "draft"})
    flags = ("pii_email", "pii_phone", "pii_card", "pii_iban")

    def check(self, text: str) -> tuple[str, ...]:
        found = self._find(text)
        # The raw text first (folding turns digits into letters); then its NFKC form without
        # invisible characters, for fullwidth digits and "name\u200b@mail.com".
        plain = fold(text).plain
        if plain != text:
            again = self._find(plain)
            found = tuple(f for f in self.flags if f in found or f in again)
        return found

    def _find(self, text: str) -> tuple[str, ...]:
        found = []
        if ("@" in text and EMAIL.search(text)) or (
            "dot" in text.lower() and EMAIL_SPELLED.search(text)
        ):
            found.append("pii_email")
        if _DIGIT.search(text):  # most messages have no digits: skip the number scans
            if find_phones(text):
                found.append("pii_phone")
            if find_cards(text):
                found.append("pii_card")
            if find_ibans(text):
                found.append("pii_iban")
        return tuple(found)
