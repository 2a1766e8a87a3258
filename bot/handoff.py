"""Does a user ask for a person? ("talk to a human", "agent please", "real person pls").

Hand-written rather than a classifier: the request is a narrow pattern (a verb of asking for
someone, or a bare call for one), a miss costs little (a moderator sees the chat anyway) and a
false hit only hands the chat to people. Typos are forgiven with difflib against the small
vocabulary below; statements about oneself ("I'm a human too") and questions about the bot
("are you a human?") are not requests.
"""

from __future__ import annotations

import difflib
import re

from bot.safety.normalize import fold

PERSON = frozenset(
    {"human", "person", "agent", "representative", "operator", "staff", "manager", "supervisor"}
)
SOMEONE = frozenset({"someone", "somebody", "people"})  # only with "real" or a verb of asking
REAL = frozenset({"real", "live", "actual"})
ASK = frozenset(
    {"talk", "speak", "chat", "connect", "transfer", "get", "want", "need", "reach", "contact"}
)
POLITE = frozenset({"please", "pls", "plz", "now", "asap"})
FILLER = frozenset({"a", "an", "the", "to", "me", "with", "some", "your", "one", "i", "can"})
SELF = frozenset({"im", "am", "i'm", "were", "are"})  # "I'm a human", "are you a human?"
VOCABULARY = sorted(PERSON | SOMEONE | REAL | ASK | POLITE | {"rep"})
_ALIASES = {"rep": "representative", "ppl": "people", "hooman": "human", "humn": "human"}
_WORD = re.compile(r"[a-z']+")


def normalise(text: str) -> list[str]:
    """The words of the text as the safety checks fold it (bot/safety/normalize.py: lower
    case, accents and look-alikes undone, "h u m a n" joined, "pleeease" -> "pleease"), each
    spelt to the vocabulary where it is close."""
    return [_spell(word) for word in _WORD.findall(fold(text).text)]


def _spell(word: str) -> str:
    word = _ALIASES.get(word, word)
    if len(word) < 4 or word in VOCABULARY or word in FILLER or word in SELF:
        return word
    close = difflib.get_close_matches(word, VOCABULARY, n=1, cutoff=0.8)
    return _ALIASES.get(close[0], close[0]) if close else word


def asks_for_person(text: str) -> bool:
    words = normalise(text)
    for i, word in enumerate(words):
        real = i > 0 and words[i - 1] in REAL
        if word not in PERSON and not (word in SOMEONE and (real or _asked(words, i))):
            continue
        before = words[max(0, i - 4) : i]
        if any(w in SELF for w in before) and not any(w in ASK for w in before):
            continue  # "I'm a human too", "are you a real person?"
        if _asked(words, i):
            return True
        rest = [w for w in words if w not in REAL and w not in POLITE and w not in FILLER]
        if rest == [word]:  # a bare call: "agent please", "real person pls", "human!"
            return True
    return False


def _asked(words: list[str], i: int) -> bool:
    """A verb of asking shortly before the person ("talk to a human"), or after it ("a human
    I can talk to")."""
    return any(w in ASK for w in words[max(0, i - 4) : i]) or any(
        w in {"talk", "speak", "chat"} for w in words[i + 1 : i + 5]
    )
