"""Spam in incoming messages: link floods, repetition, promotions, mention floods.

Flags, each with a threshold set so that one customer's ordinary message never reaches it:
- "spam_links": 3 or more links (http(s)://, www., or a bare domain with a path);
- "spam_repeat": one character 20+ times in a row (emoji included), or one word making up half
  of a message of 8+ words ("buy buy buy ..."), or 40+ words of which at most a tenth are
  distinct (one phrase pasted over and over);
- "spam_promo": two or more cues of a promotion or scam ("earn $500/day", "DM me for details",
  "double your bitcoin", "link in bio", "free followers"); strong cues count twice. One
  weak cue ("DM me", "do you take bitcoin?") is what customers write too;
- "spam_mentions": 7 or more @mentions (not counting the handles a reply starts with), or 7
  or more hashtags (a thank-you tagging six friends is still a message).
Links, mentions and repetition are read on the raw text; promotions on the folded one.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import ClassVar

from bot.safety.normalize import fold
from bot.safety.registry import Check, Stage

MAX_LINKS = 2
MAX_MENTIONS = 6
MAX_HASHTAGS = 6
MAX_RUN = 19  # characters in a row
_MIN_WORDS_FOR_REPEAT = 8

_LINK = re.compile(
    r"\bhttps?://\S+|\bwww\.\S+|\b[a-z0-9-]+\.(?:com|net|org|io|ly|co|me|xyz|top|info|biz"
    r"|link|click|shop|site|online|store|app|gg|to|cc|ru|tk)/\S*",
    re.IGNORECASE,
)
_MENTION = re.compile(r"(?<![\w@])@\w{2,}")
# The handles a reply or retweet starts with ("RT @a: @b @c ...") are the conversation, not
# a mention flood: only mentions after them count.
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:rt\s+)?@\w+:?)+", re.IGNORECASE)
_HASHTAG = re.compile(r"(?<![\w#&])#[^\W\d_]\w*")
_RUN = re.compile(rf"(\S)\1{{{MAX_RUN},}}")
_WORD = re.compile(r"\w{2,}")

_STRONG = re.compile(
    r"\b(?:follow (?:for|4) follow|f4f|l4l|follow back|free (?:followers|likes|views|subs"
    r"|subscribers|robux|v-?bucks|iphones?|gift ?cards?|money|crypto|bitcoin)|link in (?:my )?bio"
    r"|check (?:out )?my (?:profile|page|bio|channel|onlyfans)|double your (?:money|bitcoin|btc"
    r"|crypto|eth|investment|income)|guaranteed (?:profit|returns?|income|payout|winnings)"
    r"|passive income|(?:earn|make|making|earning|get)\W+\$?\d[\d,.]*k?\$?\W*"
    r"(?:/|per|a|an|each|every)\W*(?:day|daily|week|hour|month)"
    r"|work (?:from|at) home (?:and|to) (?:earn|make)"
    r"|airdrop|(?:crypto|bitcoin|forex|binary) (?:trading|investment|mining) (?:platform"
    r"|opportunity|expert|signals?|account manager)|investment (?:platform|opportunity"
    r"|manager|expert|scheme)|trading (?:signals|expert|mentor)|onlyfans|sugar (?:daddy|baby"
    r"|mommy)|recover (?:your )?(?:lost|stolen|scammed) (?:funds|crypto|bitcoin|money)"
    r"|send (?:me )?\d*\.?\d* ?(?:btc|eth|usdt|bitcoin) (?:and|to)|(?:dm|inbox|message|text"
    r"|whatsapp|telegram) (?:me |us )?(?:for|to (?:get|earn|learn|join)) (?:details|info"
    r"|more|price|prices|promo|collab|collaboration|promotion|shoutouts?|business|the link"
    r"|earning)|(?:cheap|buy) (?:followers|likes|views|reviews)|promote your (?:account|page"
    r"|business|brand) (?:to|for)|click (?:the |this |my )?link (?:in|below|to)"
    r"|limited (?:time )?offer\W+(?:act|click|dm|buy)|you(?:'ve| have) (?:won|been selected)"
    r"|claim your (?:prize|reward|gift))\b"
)
# Weak cues: each alone is ordinary ("DM me please", "do you take bitcoin?").
_WEAK = re.compile(
    r"\b(?:dm me|inbox me|bitcoin|btc|crypto|usdt|ethereum|nft|forex|invest\w*|profits?"
    r"|earn(?:ing)?s?|whatsapp|telegram|click here|cash ?app|wallet address|income)\b"
)


# Words one of which every promotion cue needs; most messages have none and skip the cues.
_PROMO_KEYS = frozenset(
    """
    follow f4f l4l free bio profile page channel double guaranteed passive earn earning earnings
    earns day daily week hour month airdrop crypto bitcoin btc eth ethereum usdt nft forex binary
    investment invest investing investor investors investments trading onlyfans sugar recover
    dm inbox message text whatsapp telegram followers likes views reviews promote click link
    limited won selected claim profit profits cash cashapp wallet income
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def _promo_score(lowered: str) -> int:
    strong = len(_STRONG.findall(lowered))
    weak = len(set(_WEAK.findall(lowered)))
    return 2 * strong + weak


def _repeats(text: str) -> bool:
    if _RUN.search(text):
        return True
    if text.count(" ") < _MIN_WORDS_FOR_REPEAT - 1 and len(text) < 200:
        return False  # too few words to count (most messages)
    words = _WORD.findall(text.lower())
    if len(words) < _MIN_WORDS_FOR_REPEAT:
        return False
    distinct = len(set(words))
    if len(words) >= 40 and distinct * 10 <= len(words):  # a pasted phrase, many times
        return True
    if distinct * 2 > len(words) + 1:  # no word can make up half: skip the count
        return False
    _, count = Counter(words).most_common(1)[0]
    return count * 2 >= len(words)


class SpamCheck(Check):
    """Flags link floods, repetition, promotions and mention floods in incoming messages."""

    name = "spam"
    stages: ClassVar[frozenset[Stage]] = frozenset({"input"})
    flags = ("spam_links", "spam_repeat", "spam_promo", "spam_mentions")

    def check(self, text: str) -> tuple[str, ...]:
        found = []
        if ("/" in text or "www." in text.lower()) and len(_LINK.findall(text)) > MAX_LINKS:
            found.append("spam_links")
        if _repeats(text):
            found.append("spam_repeat")
        folded = fold(text)  # "fr33 f0ll0wers"; "earn 500k" is read unfolded too
        forms = {folded.text, folded.plain.lower()}  # usually one and the same
        promo = not folded.words.isdisjoint(_PROMO_KEYS)
        if promo and max(_promo_score(form) for form in forms) >= 2:
            found.append("spam_promo")
        if ("@" in text and len(_MENTION.findall(_REPLY_PREFIX.sub("", text))) > MAX_MENTIONS) or (
            "#" in text and len(_HASHTAG.findall(text)) > MAX_HASHTAGS
        ):
            found.append("spam_mentions")
        return tuple(found)
