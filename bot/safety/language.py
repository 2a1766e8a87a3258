"""A cheap "is this English?" guess.

VADER and alt-profanity-check only know English: their scores on other languages are noise, so
such texts are flagged for review instead of trusted. Two signals, both conservative:
- most letters are outside the Latin script (Cyrillic, Arabic, CJK, ...);
- four or more words, at least two common function words of another European language and more
  of those than English ones ("donde esta mi pedido por favor").
Short messages ("hola!", "merci") are never flagged: there is too little to go on.
"""

from __future__ import annotations

import re
from typing import ClassVar

from bot.safety.registry import Check, Stage


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_WORD = re.compile(r"[a-zà-öø-ÿœß']+")
# Words that are frequent in English messages.
_ENGLISH = _wordset(
    "the a an and or is are was to of in on for my your you i it this that with me we do not"
    " have be at can will just so but what how where why when please thanks hi hello order"
    " no yes its it's i'm don't"
)
# Frequent function words of es/fr/de/it/pt/nl that are not English words too.
_FOREIGN = _wordset(
    "el la los las que y un una por para mi es pero muy gracias hola está esta donde dónde"
    " le les des est et je pas pour avec mon ma vous une du merci bonjour très où"
    " der das und ist ich nicht mein meine sie ein eine danke bitte hallo für wo"
    " il che sono grazie ciao della ho questo"
    " não obrigado obrigada você meu minha olá"
    " het een niet ik bedankt hoi"
)


def looks_non_english(text: str) -> bool:
    if not text.isascii():  # ASCII text has Latin letters only: skip the script count
        letters = [ch for ch in text if ch.isalpha()]
        latin = sum(1 for ch in letters if ch < "\u0250")
        if len(letters) >= 3 and latin < len(letters) / 2:
            return True
    words = _WORD.findall(text.lower())
    if len(words) < 4:
        return False
    foreign = sum(1 for w in words if w in _FOREIGN)
    english = sum(1 for w in words if w in _ENGLISH)
    return foreign >= 2 and foreign > english


class LanguageCheck(Check):
    name = "language"
    stages: ClassVar[frozenset[Stage]] = frozenset({"input", "draft"})
    flags = ("non_english",)

    def check(self, text: str) -> tuple[str, ...]:
        return ("non_english",) if looks_non_english(text) else ()
