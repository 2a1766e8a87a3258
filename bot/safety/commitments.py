"""Commitments the brand did not approve: refunds, compensation, discounts, prices, delivery
dates, guarantees and admissions of fault.

A reply that says "you'll get a full refund" or "it will arrive on Monday" binds the brand, so
it goes to a moderator. Matched on the plain form of the text (see `phrases.plain`):
- first-person promises: "we'll refund you", "I can offer you a voucher", "we will send a new
  one free of charge", "we guarantee";
- what the user will get: "you'll get your money back", "your refund has been processed";
- discounts and prices: "20% off", "a discount code", "$30", "30 euros", "it costs 30";
- delivery dates: "it will arrive on Monday", "your order ships tomorrow", "you'll have it
  within 3 days";
- admissions: "that was our fault", "we admit liability", "we take full responsibility".
A hedge or negation earlier in the same clause cancels a match ("I can't promise it will
arrive on Monday", "it's not our fault"). Mentions without a promise pass ("refunds are
handled by our team", "our prices are on the website").

Per account (`[accounts.safety]`): `commitment_phrases` are extra phrases that count, and
`approved_phrases` are commitments the brand has approved; a match that overlaps an approved
phrase found in the draft does not count ("we offer free returns" with "free returns"
approved).
"""

from __future__ import annotations

import re
from typing import ClassVar

from bot.safety.context import CheckContext
from bot.safety.phrases import Span, find_phrases, overlaps, plain
from bot.safety.registry import ContextCheck, Stage

_WE = r"\b(?:we|i)"
# "we'll", "I can", "we are happy to", "we have already", "I'll go ahead and" ...
_WE_WILL = (
    _WE + r"(?:'ll|'d|'ve|'re going to|'m going to|'re happy to|'m happy to|'d be happy to"
    r"| will| shall| can| could| would| have| had| are going to| am going to| are happy to"
    r"| am happy to| would be happy to| are able to| am able to)?"
    r"(?: (?:also|now|gladly|happily|definitely|certainly|personally|immediately|just|already"
    r"|be able to|go ahead and|make sure to|make sure we))*"
)
_GIVE = r"(?:issue|issued|give|given|send|sent|process|processed|offer|offered|provide|arrange|get)"
_REWARD = (
    r"(?:refund|reimbursement|voucher|coupon|gift card|gift voucher|store credit|credit(?! card)"
    r"|compensation|discount|promo code|discount code|goodwill gesture|replacement|new one"
    r"|new pair|free \w+)(?!\w)"
)
_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|wed|thu|fri|sat|sun)"
_MONTH = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)"
)
_WHEN = (
    r"(?:today|tonight|tomorrow|this (?:week|weekend|afternoon|evening)|next (?:week|" + _DAY + r")"
    r"|(?:on|by|before|until) (?:the )?(?:" + _DAY + r"|" + _MONTH + r"|\d{1,2}(?:st|nd|rd|th)?|"
    r"tomorrow|end of|next|the end)"
    r"|(?:with)?in (?:the next )?(?:\d+|one|two|three|four|five|a few|a couple of)(?:-\d+)? "
    r"(?:business |working )?(?:days?|hours?|weeks?|minutes?|mins?))"
    r"|(?:at|by) \d{1,2}(?::\d\d)? ?(?:am|pm|o'clock)"
)
_SUBJECT = (
    r"\b(?:it|they|this|that|your (?:order|parcel|package|delivery|item|items|replacement|refund)"
    r"|the (?:order|parcel|package|delivery|item|items|replacement|refund))"
)
_ARRIVE = (
    r"(?:arrive|arrives|be delivered|is delivered|be there|be with you|reach you|reaches you|"
    r"ship|ships|be shipped|is shipped|be dispatched|dispatches|get to you|gets to you|"
    r"be back in stock|be in your account|show up|"
    # an order's ready time is a promise too ("it will be ready in 2 minutes")
    r"be ready|is ready|be available|be done|be sent|be out)"
)
_AMOUNT = (
    r"(?:[$€£¥]\s?\d[\d,.]*|\b\d[\d,.]*\s?(?:[$€£¥]|usd|eur|gbp|dollars?|euros?|bucks)"
    r"(?!\w))"
)

_PATTERNS = tuple(
    re.compile(p)
    for p in (
        # refunds and compensation promised by us
        _WE_WILL + r" (?:refund|reimburse|compensate|credit)\w*",
        _WE_WILL + r" " + _GIVE + r"(?: you)?(?: with)?(?: an?| the| your| another)?"
        r"(?: full| partial| complete| \d+%| \S*\d\S*)? " + _REWARD,
        _WE_WILL + r"\b[^.!?]{0,40}?\b(?:for free|free of charge|at no (?:extra |additional )?"
        r"(?:cost|charge)|on the house|on us)\b",
        # what the user will get
        r"\byou(?:'ll| will| are going to|'re going to| should| can expect to)"
        r" (?:get|receive|be given|be getting|be sent|have)(?: back)?(?: an?| the| your)?"
        r"(?: full| partial| complete)? (?:refund|money back|" + _REWARD + r")",
        r"\b(?:a|your|the) (?:full |partial )?refund (?:is|has been|will be|was)"
        r" (?:issued|processed|approved|sent|on its way|granted)",
        # discounts and prices
        r"\b\d{1,3} ?%(?: off| discount)",
        r"\b(?:discount|promo|coupon|voucher) code\b",
        _AMOUNT,
        r"\b(?:costs?|priced at|price is|is priced|will be charged|pay only|pay just)\s+\d",
        # delivery dates
        _SUBJECT + r"(?:'ll| will| should| is going to| are going to| shall| is| are)?"
        r"(?: definitely| certainly| surely| then)? " + _ARRIVE + r"\b[^.!?]{0,30}?\b" + _WHEN,
        r"\byou(?:'ll| will| should)(?: definitely| certainly)? (?:get|receive|have)"
        r" (?:it|them|your (?:order|parcel|package|item|items|refund|replacement)"
        r"|the (?:order|parcel|package|item|items|refund|replacement))\b[^.!?]{0,20}?\b" + _WHEN,
        # guarantees and admissions
        _WE + r"(?: can| do)? (?:guarantee|promise)\b",
        _WE + r" (?:admit|accept|acknowledge)(?: full| any| all)? (?:liability|fault|"
        r"responsibility|negligence)",
        _WE + r" take (?:full |complete |all )?responsibility",
        r"\b(?:our|my) (?:fault|negligence)\b",
        r"\bwe(?:'re| are| were) (?:fully |entirely )?(?:liable|at fault|negligent)\b",
    )
)
# A negation or hedge earlier in the same clause: "I can't promise it will arrive tomorrow".
_HEDGE = re.compile(
    r"\b(?:not|no|never|cannot|unable|unfortunately|unsure|if|whether|maybe|might|perhaps)\b"
    r"|n't\b"
)
_CLAUSE_END = re.compile(r"[.!?;,:]|\b(?:but|and|so)\b")


def _hedged(text: str, start: int) -> bool:
    clause_start = 0
    for match in _CLAUSE_END.finditer(text, 0, start):
        clause_start = match.end()
    return bool(_HEDGE.search(text, clause_start, start))


def commitment_spans(text: str, context: CheckContext) -> list[Span]:
    """Spans (in `plain(text)`) of the commitments that count in `context`."""
    flat = plain(text)
    rules = context.rules
    found = [
        m.span()
        for pattern in _PATTERNS
        for m in pattern.finditer(flat)
        if not _hedged(flat, m.start())
    ]
    found += find_phrases(flat, rules.commitment_phrases)
    if found and rules.approved_phrases:
        approved = find_phrases(flat, rules.approved_phrases)
        found = [span for span in found if not overlaps(span, approved)]
    return found


class CommitmentCheck(ContextCheck):
    name = "commitment"
    stages: ClassVar[frozenset[Stage]] = frozenset({"draft"})
    flags = ("commitment",)

    def check_with(self, text: str, context: CheckContext) -> tuple[str, ...]:
        return ("commitment",) if commitment_spans(text, context) else ()
