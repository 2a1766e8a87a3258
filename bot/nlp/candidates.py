"""Best-of-n filters: which sampled replies are unusable, and the order of the rest.

Pure functions over text, without a tokenizer or a word list, so they work for any language
written with spaces (Latin, Cyrillic, Greek, Arabic, ...) and do not mistake CJK or Thai, which
are written without them, for one very long word. `drop_reason` says why a candidate cannot be
sent; the safety gate (BLOCKED) and the ranking (OUTRANKED) come later.

The thresholds were tuned with `benchmarks/candidate_filters.py`: the agents' real replies of
the coffee-chat conversations in ../shared/data must pass (fewer than 1% dropped), while text
decoded from random byte-level tokens and repeated phrases must not.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import pairwise

from bot.domain import Candidate, DropReason

# --- thresholds -----------------------------------------------------------------------------
MAX_TOKEN_CHARS = 40  # a longer space-free run (not a link, not CJK) is never a real word
MAX_WORD_CHARS = 30  # "Sendungsverfolgungsnummer" (25) is a word; longer ones count as bad
MAX_BAD_SHARE = 0.3  # tokens that are neither words, numbers, links, emoji nor punctuation
MAX_SCRIPTS = 2  # letter scripts in one reply ("iPhone" in a Russian reply is two)
# Word salad (see _is_salad), judged on texts of SALAD_MIN_WORDS words or more. Each share
# below its threshold (or above, for bad and long words) adds weight x the difference; a sum
# of 1 or more is salad. Grid-searched on the benchmark with the other languages held to < 0.75.
SALAD_MIN_WORDS = 6
SURE_WORDS = 8
SHORT_TEXT_MARGIN = 0.25
BAD_WEIGHT = 5.0  # a share of 0.2 bad tokens is salad on its own
LONG_WORD_CHARS = 13  # "unfortunately" is the longest common one; salad glues subwords
LONG_WEIGHT = 2.0
SHORT_WORD_CHARS = 3  # function words: ~45% of English words, 20-35% in Finnish or Russian
SHORT_SHARE = 0.25
SHORT_WEIGHT = 2.0
PUNCT_SHARE = 0.15  # words followed by , . ! ? and the like
PUNCT_WEIGHT = 5.0
# Repetition:
SAME_WORD_RUN = 4  # "no no no no"
SAME_PAIR_RUN = 3  # "thank you thank you thank you"
ECHO_MIN_WORDS = 3  # a phrase this long said twice in a row: "your order is your order is"
MAX_ECHO_WORDS = 30
BIGRAM_MIN_WORDS = 9  # the distinct-bigram test only for texts over 8 words
MIN_DISTINCT_BIGRAMS = 0.6
SENTENCE_MIN_WORDS = 3  # a repeated sentence this long is a loop, not "Thanks! ... Thanks!"
CHAR_LOOP = re.compile(r"([^\s\d]{1,4}?)\1{7,}")  # "hahahahahahahahaha", "!!!!!!!!", "oooooooo"

# Scripts written without spaces between words: a long run of them is a sentence, not a word.
NO_SPACE_SCRIPTS = frozenset({"CJK", "THAI", "LAO", "KHMER", "MYANMAR", "TIBETAN"})
# Japanese mixes kanji and both kana in one word; full-width forms belong to CJK text.
SCRIPT_FAMILY = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "FULLWIDTH": "CJK", "HALFWIDTH": "CJK"}
NUMBER = re.compile(r"[#№$€£¥+\-~]?\d[\w.,:/\-%$€£¥+'’]*")
LINK = re.compile(r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+\.[\w.]+|[@#]\w+", re.IGNORECASE)
SENTENCE = re.compile(r"[^.!?。！？]+")
PUNCTUATED = tuple(",.!?;:…。！？、，،؟।")


def drop_reason(text: str) -> DropReason | None:
    """Why a candidate reply is unusable, or None when it may be sent (safety aside).

    EMPTY: nothing but spaces, punctuation or symbols. GIBBERISH: control or replacement
    characters, a space-free run too long for a word, letters of three or more scripts, too
    many tokens that are not words, or word salad (see `_is_salad`). REPETITIVE: a word four
    times in a row, a pair of words three times, a longer phrase twice in a row, a sentence
    twice, a character pattern eight times, or few distinct word pairs in a longer text.
    """
    if not any(_is_content(ch) for ch in text):
        return DropReason.EMPTY
    if _is_gibberish(text):
        return DropReason.GIBBERISH
    if _is_repetitive(text):
        return DropReason.REPETITIVE
    return None


def rank(candidates: Sequence[Candidate]) -> tuple[Candidate, ...]:
    """All candidates, best first: survivors (`dropped` None) by score, the best keeping
    `dropped=None` and the others marked OUTRANKED, then the dropped ones by score. NaN scores
    sort last; the sort is stable, so ties keep their sampling order."""

    def by_score(candidate: Candidate) -> float:
        return -math.inf if math.isnan(candidate.score) else candidate.score

    alive = sorted((c for c in candidates if c.dropped is None), key=by_score, reverse=True)
    dead = sorted((c for c in candidates if c.dropped is not None), key=by_score, reverse=True)
    ranked = [
        c if i == 0 else replace(c, dropped=DropReason.OUTRANKED) for i, c in enumerate(alive)
    ]
    return (*ranked, *dead)


# --- gibberish ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word, number, link, emoji, punct or bad
    raw: str
    core: str  # without the punctuation around it
    script: str | None = None  # the letters' script, for words


def _is_gibberish(text: str) -> bool:
    if any(_is_junk(ch) for ch in text):
        return True
    tokens = [_classify(token) for token in text.split()]
    if any(_too_long(token) for token in tokens):
        return True
    if len({t.script for t in tokens if t.script is not None}) > MAX_SCRIPTS:
        return True
    bad = sum(t.kind == "bad" for t in tokens)
    if bad / len(tokens) > MAX_BAD_SHARE:
        return True
    return _is_salad(tokens)


def _is_salad(tokens: Sequence[_Token]) -> bool:
    """Words strung together at random, as from uniformly sampled subword tokens.

    Without a word list the tell-tales are statistical. Real text in any space-separated
    language has short function words ("a", "to", "и", "ja") and punctuation; random subwords
    are long, glued into non-words (bad tokens, words over LONG_WORD_CHARS), and seldom followed
    by a comma or a full stop. The evidence is added up; 1 or more is salad. Capitals are not
    counted: German capitalises every noun, and a list of flavours is all proper names.
    """
    words = [t for t in tokens if t.kind == "word" and t.script not in NO_SPACE_SCRIPTS]
    if len(words) < SALAD_MIN_WORDS:
        return False
    bad = sum(t.kind == "bad" for t in tokens) / len(tokens)
    long_words = sum(len(w.core) > LONG_WORD_CHARS for w in words) / len(words)
    short = sum(len(w.core) <= SHORT_WORD_CHARS for w in words) / len(words)
    punctuated = sum(t.raw.endswith(PUNCTUATED) for t in tokens) / len(words)
    oddness = (
        BAD_WEIGHT * bad
        + LONG_WEIGHT * long_words
        + SHORT_WEIGHT * max(0.0, SHORT_SHARE - short)
        + PUNCT_WEIGHT * max(0.0, PUNCT_SHARE - punctuated)
    )
    # Fewer words are weaker evidence: texts under SURE_WORDS words need more of it.
    return oddness >= 1 + SHORT_TEXT_MARGIN * max(0, SURE_WORDS - len(words))


def _classify(raw: str) -> _Token:
    if LINK.fullmatch(raw.rstrip(".,!?;:)\"'’”")):
        return _Token("link", raw, raw)
    core = raw.strip("".join(ch for ch in set(raw) if _is_punct(ch)))
    if not core:
        return _Token("punct" if len(raw) <= 3 else "bad", raw, core)
    if all(_is_emoji(ch) for ch in core):
        return _Token("emoji", raw, core)
    # "thing👍" is a word and an emoji; "th©ing" is not a word.
    letters = core.strip("".join(ch for ch in set(core) if _is_emoji(ch)))
    if NUMBER.fullmatch(letters) and any(ch.isdigit() for ch in letters):
        return _Token("number", raw, core)
    if len(core) == 1 and unicodedata.category(core)[0] == "S":
        return _Token("punct", raw, core)  # "+", "=", "$" on its own
    script = _word_script(letters)
    if script is None or (script not in NO_SPACE_SCRIPTS and len(letters) > MAX_WORD_CHARS):
        return _Token("bad", raw, core)
    return _Token("word", raw, letters, script)


def _word_script(core: str) -> str | None:
    """The script of a word's letters, or None when it is not a plausible word: symbols
    inside it, letters of two scripts, or capitals where no word has them ("leaguesAWS")."""
    scripts: set[str] = set()
    for part in _parts(core):
        for ch in part:
            category = unicodedata.category(ch)
            if category[0] == "M" or category in ("Cf", "Nd"):  # accents, ZWJ, "mp3"
                continue
            if category[0] != "L":
                return None
            scripts.add(_script(ch))
        if not _plausible_case(part):
            return None
    if len(scripts) != 1:
        return None
    return scripts.pop()


def _parts(core: str) -> list[str]:
    """A token cut at the punctuation inside it: "don't", "and/or", "U.S.", "您好，谢谢"."""
    return "".join(" " if _is_punct(ch) else ch for ch in core).split()


def _plausible_case(word: str) -> bool:
    """lower, Title, UPPER, or one inner capital after a capital or a short prefix
    ("PayPal", "McDonald", "iPhone", "eBay"); not "itertoolsComp" or "DennisENValienz"."""
    rises = [i for i in range(1, len(word)) if word[i - 1].islower() and word[i].isupper()]
    if not rises:
        return True
    return len(rises) == 1 and (word[0].isupper() or rises[0] <= 2)


@lru_cache(maxsize=4096)
def _script(ch: str) -> str:
    name = unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
    return SCRIPT_FAMILY.get(name, name)


def _too_long(token: _Token) -> bool:
    if token.kind == "link" or len(token.raw) <= MAX_TOKEN_CHARS:
        return False
    return not any(ch.isalpha() and _script(ch) in NO_SPACE_SCRIPTS for ch in token.raw)


def _is_content(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN" or _is_emoji(ch)


def _is_junk(ch: str) -> bool:
    """Control bytes, U+FFFD (a character cut between tokens), surrogates, private use."""
    if ch in "\n\t\r":
        return False
    return ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co")


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "P"


def _is_emoji(ch: str) -> bool:
    """Pictographs and what joins or modifies them: skin tones, ZWJ, variation selectors,
    the keycap mark, tag characters (flags of regions). Emoji newer than Python's Unicode
    tables are unassigned (Cn) to it; in the emoji planes they count too."""
    point = ord(ch)
    category = unicodedata.category(ch)
    return (
        category == "So"
        or (category == "Cn" and 0x1F000 <= point <= 0x1FFFF)
        or 0x1F3FB <= point <= 0x1F3FF
        or point in (0x200D, 0xFE0E, 0xFE0F, 0x20E3)
        or 0xE0020 <= point <= 0xE007F
    )


# --- repetition -----------------------------------------------------------------------------


def _is_repetitive(text: str) -> bool:
    if CHAR_LOOP.search(text):
        return True
    words = [w for w in (_bare(token) for token in text.split()) if w]
    if _phrase_loop(words):
        return True
    if len(words) >= BIGRAM_MIN_WORDS:
        bigrams = list(pairwise(words))
        if len(set(bigrams)) / len(bigrams) < MIN_DISTINCT_BIGRAMS:
            return True
    sentences = [
        tuple(w for w in (_bare(t) for t in s.split()) if w) for s in SENTENCE.findall(text)
    ]
    long_enough = [s for s in sentences if len(s) >= SENTENCE_MIN_WORDS]
    return len(set(long_enough)) < len(long_enough)


def _phrase_loop(words: Sequence[str]) -> bool:
    """A word SAME_WORD_RUN times in a row, a pair SAME_PAIR_RUN times, or a longer phrase
    (up to MAX_ECHO_WORDS words) twice in a row."""
    for size in range(1, min(MAX_ECHO_WORDS, len(words) // 2) + 1):
        times = SAME_WORD_RUN if size == 1 else SAME_PAIR_RUN if size < ECHO_MIN_WORDS else 2
        for start in range(len(words) - size * times + 1):
            phrase = words[start : start + size]
            if all(
                words[start + k * size : start + (k + 1) * size] == phrase for k in range(1, times)
            ):
                return True
    return False


def _bare(token: str) -> str:
    return "".join(ch for ch in token.casefold() if not _is_punct(ch))
