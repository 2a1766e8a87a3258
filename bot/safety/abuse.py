"""Insults, slurs and profanity that the toxicity model cannot see (flag "abuse").

alt-profanity-check scores the raw text with a bag of words, so "y0u 1d10t", "f*ck",
"іdіоt" (Cyrillic і and о) or "s t u p i d" are unknown words to it and score low. This check
reads the folded text (bot/safety/normalize.py) against a word list and raises "abuse" when:
- a word of the list appears only after folding (the writer disguised it; stretching such as
  "shiiit" is emphasis, not disguise), or
- a slur or a word that is abusive in any context appears at all (`_ALWAYS`), or a word
  built on a strong profanity stem ("shitbag", "fukin", "beeotch": compounds and misspellings
  the model's vocabulary lacks).
Plain words such as "stupid" or "idiot" are left to the model, which weighs their context
("sorry, stupid question" is not an attack). Masked words ("f**k", "sh*t") count as disguised.
"""

from __future__ import annotations

import re
from typing import ClassVar

from bot.safety.normalize import fold
from bot.safety.registry import Check, Stage


def _squeeze(word: str) -> str:
    """Repeated letters to one ("fuuuck" -> "fuck", "kill" -> "kil"): the lists and the
    texts are compared squeezed, so stretched words still match."""
    return re.sub(r"(.)\1+", r"\1", word)


# Abusive when disguised; left to the model when written plainly.
_WORDS = frozenset(
    """
    idiot idiots idiotic moron morons moronic imbecile stupid dumb dumbass loser losers scum
    scumbag bastard bastards bitch bitches bitchy asshole assholes arsehole jackass dick dicks
    dickhead prick pricks wanker wankers twat twats fuck fucking fucked fucker fuckers fck fk
    fuk fking fkn stfu gtfo shit shitty shithead bullshit crap slut sluts whore whores skank
    douche douchebag cock cocksucker pussy tosser bellend useless pathetic clown clowns
    garbage trash incompetent thieves thief liar liars hate fag fags coon coons chink chinks
    dyke
    """.split()  # noqa: SIM905 - a word list reads better as text
)
# Slurs and words that are abusive in any context: flagged even when written plainly.
_ALWAYS = frozenset(
    """
    cunt cunts motherfucker motherfuckers motherfucking retard retards retarded faggot faggots
    nigger niggers nigga niggas spic spics kike kikes tranny trannies wetback wetbacks gook
    gooks beaner beaners raghead towelhead kys honkie honkies honky nigra
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_LEXICON = frozenset(_squeeze(w) for w in _WORDS | _ALWAYS)
_ALWAYS_SQUEEZED = frozenset(_squeeze(w) for w in _ALWAYS)
_BY_LENGTH: dict[int, list[str]] = {}
for _word in _WORDS | _ALWAYS:
    _BY_LENGTH.setdefault(len(_word), []).append(_word)

# Words built on a strong profanity stem: compounds and misspellings ("shitbag", "fukin",
# "beeotch") are unknown words to the model, so any word with such a stem counts.
_STEM = re.compile(
    r"[a-z]*(?:fuck|fuk|shit|cunt|bitch|biatch|beeotch|beotch|nigg|whore|twat)[a-z]*"
)
_STEM_QUICK = re.compile(r"fuck|fuk|shit|cunt|bitch|biatch|beeotch|beotch|nigg|whore|twat")
_STEM_EXEMPT = frozenset(
    """
    scunthorpe shitake shiitake shitzu cushite cushites niggle niggles niggling fukuoka
    fukushima fukui
    """.split()  # noqa: SIM905 - a word list reads better as text
)
# Handles and links are names, not words the writer chose ("@shitpostdaily").
_HANDLES_AND_LINKS = re.compile(r"@\w+|https?://\S+|www\.\S+")
_TOKEN = re.compile(r"[a-z]+")
_MASKED = re.compile(r"\b[a-z][a-z*]*\*[a-z*]*")
_PHRASES = re.compile(
    r"\b(?:kill (?:yo)?ur ?self|go (?:and )?die|neck (?:yo)?ur ?self|drink bleach"
    r"|piece of (?:shit|trash|garbage)|son of a bitch|white trash|camel jockeys?)\b"
)


def _unmask(token: str) -> bool:
    """Whether a masked token ("f*ck", "sh**") stands for a listed word of its length."""
    for word in _BY_LENGTH.get(len(token), ()):
        if all(t == "*" or t == w for t, w in zip(token, word, strict=True)):
            return True
    return False


def find_abuse(raw: str) -> bool:
    folded = fold(raw)
    text = folded.text
    if "@" in text or "http" in text or "www." in text:
        text = _HANDLES_AND_LINKS.sub(" ", text)
    if _PHRASES.search(text):
        return True
    if "*" in text and any(_unmask(t) for t in _MASKED.findall(text)):
        return True
    if _STEM_QUICK.search(text) and any(w not in _STEM_EXEMPT for w in _STEM.findall(text)):
        return True
    hits = set(_TOKEN.findall(_squeeze(text))) & _LEXICON
    if not hits:
        return False
    if hits & _ALWAYS_SQUEEZED:
        return True
    # Stretching ("shiiit") is emphasis, not disguise: compare squeezed words.
    plain = {_squeeze(t) for t in _TOKEN.findall(folded.plain.lower())}
    return not hits <= plain


class AbuseCheck(Check):
    """Flags disguised insults and profanity, and slurs, in incoming messages."""

    name = "abuse"
    stages: ClassVar[frozenset[Stage]] = frozenset({"input"})
    flags = ("abuse",)

    def check(self, text: str) -> tuple[str, ...]:
        return ("abuse",) if find_abuse(text) else ()
