"""Words that name a group of people, and the profanity model's bias about them.

alt-profanity-check scores some identity words as profanity on their own: "gay" 0.98, "queer"
0.99, and statements that mention lesbians about 0.7, so "I am gay" would be blocked and a
neutral sentence about lesbians reviewed. The gate therefore scores such a text a second time
with these words replaced by "person". When only that second score falls under the review
threshold, the group's name alone made the text look toxic: the flag is `toxic_identity`
instead of `toxic`, and it asks for review, never a block. A promoted safety head, trained to
tell hate from talk about a group, has the last word on such texts (bot/nlp/heads.py).

The list names groups neutrally; slurs are not on it and keep their score.
"""

from __future__ import annotations

import re

TOXIC_IDENTITY = "toxic_identity"
NEUTRAL_STAND_IN = "person"

_TERMS = (
    r"gays?|lesbians?|queers?|bisexuals?|bi|homosexuals?|trans|transgender|nonbinary|lgbtq?\+?"
    r"|black|blacks|jews?|jewish|muslims?|islam|islamic|mexicans?|asians?|chinese|arabs?"
    r"|immigrants?|refugees?|latinos?|latinas?|latinx|hispanics?|native|indigenous"
    r"|disabled|deaf|blind|autistic|women|woman|girls?|feminists?"
)
_IDENTITY = re.compile(rf"\b(?:{_TERMS})\b", re.IGNORECASE)


def names_a_group(text: str) -> bool:
    return _IDENTITY.search(text) is not None


def without_group_names(text: str) -> str:
    """`text` with every identity word replaced by a neutral stand-in."""
    return _IDENTITY.sub(NEUTRAL_STAND_IN, text)
