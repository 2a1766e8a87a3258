"""Street addresses in a draft: a house number, capitalised street words and a street type
("12 Baker Street", "1600 Pennsylvania Ave", "350 5th Avenue", "221B Baker St."), German-style
"Hauptstraße 5", and PO boxes.

Drafts only: users give their own address to support all the time, but a reply that states an
address may leak someone else's. Capitalised street names are required so that "3 more ways"
or "2 business days" never count; a lower-case address is missed (precision first).
"""

from __future__ import annotations

import re
from typing import ClassVar

from bot.safety.registry import Check, Stage

_STREET_TYPES = (
    r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|"
    r"square|sq|terrace|way|close|crescent|highway|hwy|parkway|pkwy|row|gardens|mews)"
)
# Small words of Title Case headlines ("Top 10 Tips For The Road") are never street names.
_TITLE_WORDS = r"(?:For|The|To|In|Of|And|On|At|A|An|Or|With|From|By|Your|Our|My)"
_ADDRESS = re.compile(
    r"\b\d{1,5}[A-Za-z]?,?\s+(?:(?:(?!" + _TITLE_WORDS + r"\b)[A-Z][\w'’-]*"
    r"|\d{1,3}(?:st|nd|rd|th)|[NSEW]\.?)\s+){1,4}" + _STREET_TYPES + r"\b"
)
_GERMAN = re.compile(
    r"\b[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm)\s+\d{1,4}[a-z]?\b"
)
_PO_BOX = re.compile(r"\bP\.?\s?O\.?\s+Box\s+\d+", re.IGNORECASE)


def find_addresses(text: str) -> list[tuple[int, int]]:
    return [m.span() for p in (_ADDRESS, _GERMAN, _PO_BOX) for m in p.finditer(text)]


class AddressCheck(Check):
    name = "address"
    stages: ClassVar[frozenset[Stage]] = frozenset({"draft"})
    flags = ("pii_address",)

    def check(self, text: str) -> tuple[str, ...]:
        return ("pii_address",) if any(ch.isdigit() for ch in text) and find_addresses(text) else ()
