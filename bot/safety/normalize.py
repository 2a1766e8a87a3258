"""Text folding shared by the rule-based checks, so that disguised words still match.

`fold(text)` undoes the usual tricks, in this order:
1. Unicode NFKC (fullwidth "ｉｇｎｏｒｅ", ligatures, superscripts become plain letters);
2. zero-width, bidi-control, soft-hyphen and other control characters are deleted
   ("ig\\u200bnore", "\\u202eetoh");
3. accents are stripped and Cyrillic/Greek look-alikes of Latin letters mapped ("іdіоt");
4. lower case;
5. spaced-out letters are joined ("i g n o r e", "h.a.t.e", "k-i-l-l");
6. leetspeak inside words is read as letters ("1d10t", "h4te", "sh!t", "b@stard"; a leading
   "@" stays, since "@shopco" is a handle);
7. runs of 3+ equal characters shrink to 2 ("stuuupid" -> "stuupid", "kiiill" -> "kiill").

Folding turns digits into letters, so number-based checks (PII) read the raw text, or
`Folded.plain` (steps 1-2 only), never `Folded.text`. Each text is folded once and the result
shared between checks through a small LRU cache: the gate hands every check the same string.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Zero-width and joiner characters, bidi embeddings/overrides/isolates, soft hyphen, word
# joiner and invisible operators, BOM, Mongolian vowel separator, combining grapheme joiner.
_INVISIBLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u3164\ufeff\uffa0"
)
_CONTROLS = "".join(chr(c) for c in range(32) if chr(c) not in "\t\n\r") + "\x7f"
_DELETE = str.maketrans("", "", _INVISIBLE + _CONTROLS)

# Look-alikes that NFKC leaves alone (it keeps scripts apart). Lower and upper case.
_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
        "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ո": "n", "ց": "g",
        "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p",
        "С": "c", "Т": "t", "У": "y", "Х": "x", "Ѕ": "s", "І": "i", "Ј": "j", "Ӏ": "l",
        # Greek
        "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "γ": "y", "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z",
        "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t",
        "Υ": "y", "Χ": "x",
        # Latin letters of other alphabets that pass for ASCII ones
        "ı": "i", "ɡ": "g", "ɑ": "a", "ʟ": "l", "ᴀ": "a", "ᴇ": "e", "ɪ": "i", "ᴏ": "o",
    }
)  # fmt: skip

_LEET = str.maketrans("0134578@$|!+", "oieastbaslit")
_LEET_CHAR = re.compile(r"[0134578@$|!+]")
# A word that mixes letters with leet characters: at least one letter and one of 0134578@$|!+.
_LEET_WORD = re.compile(
    r"(?<![\w@$|!+])(?=[\w@$|!+]*[a-z])(?=[\w@$|!+]*[0134578@$|!+])[\w@$|!+]*[\w@$|+]"
)
# Three or more single characters, each followed by one separator: "i g n o r e", "h.a.t.e".
# The same separator throughout, so "I k.i.l.l" keeps its "I".
_SPACED = re.compile(r"(?<![\w@$])[a-z0-9@$]([ .\-_*·,/|~])(?:[a-z0-9@$]\1)+[a-z0-9@$](?![\w@$])")
_SPACED_SEPARATORS = re.compile(r"[ .\-_*·,/|~]")
_RUN = re.compile(r"(.)\1\1+")
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True, slots=True)
class Folded:
    """`plain`: NFKC with invisible characters deleted (digits intact, for number checks);
    `text`: fully folded, lower case, for word checks; `words`: the words of `text`, so that
    a check can skip its patterns when none of their key words occurs (the common case)."""

    plain: str
    text: str
    words: frozenset[str]


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _join_spaced(match: re.Match[str]) -> str:
    return _SPACED_SEPARATORS.sub("", match.group())


def _unleet(match: re.Match[str]) -> str:
    word = match.group()
    if word[0] == "@":  # a handle ("@shopco"), not "@" for "a"
        return "@" + word[1:].translate(_LEET)
    return word.translate(_LEET)


@lru_cache(maxsize=256)  # the checks of one text run back to back
def fold(text: str) -> Folded:
    """The folded forms of `text` (cached: every check of one message shares them)."""
    if text.isascii():  # most messages: NFKC, accents and look-alikes cannot apply
        plain = text.translate(_DELETE) if not text.isprintable() else text
        lowered = plain.lower()
    else:
        plain = unicodedata.normalize("NFKC", text).translate(_DELETE)
        lowered = _strip_accents(plain).translate(_HOMOGLYPHS).lower()
    folded = _SPACED.sub(_join_spaced, lowered)
    if _LEET_CHAR.search(folded):
        folded = _LEET_WORD.sub(_unleet, folded)
    folded = _RUN.sub(r"\1\1", folded)
    return Folded(plain=plain, text=folded, words=frozenset(_WORD.findall(folded)))
