"""Intent rules for the lexical classifier: weighted regex cues per label.

Each label has cues; a cue that matches adds its weight to the label's evidence (once per cue,
however often it matches). VADER's compound score adds polarity evidence to labels that carry a
feeling (complaints are negative, praise is positive). The classifier turns the evidence into a
softmax distribution in which "other" has a fixed prior, so a message without cues lands there.

Patterns are matched against the lower-cased text (cheaper than re.IGNORECASE: ~40 cues run
on every message), so write them in lower case. To change the behaviour, pass
your own `IntentRules` (or a copy of `DEFAULT_CUES` with edits) to `LexicalClassifier`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

OTHER = "other"
# An upper-case letter that is not part of an escape such as \W, \S or \B.
_UPPER_LITERAL = re.compile(r"(?<!\\)[A-Z]")


@dataclass(frozen=True, slots=True)
class Cue:
    """One piece of evidence: when `pattern` matches, `weight` is added to the label's logit."""

    pattern: str
    weight: float


@dataclass(frozen=True, slots=True)
class Polarity:
    """Evidence from sentiment: `positive * max(c, 0) + negative * max(-c, 0)` for compound c."""

    positive: float = 0.0
    negative: float = 0.0


# Start of the message or of a sentence, after up to two openers ("hey quick q - ...", "yo").
_LEAD = (
    r"(?:^|[.!?:;]\s+)\W*(?:(?:hey+|hi+|hello+|hiya|yo|so|ok|okay|wait|also|omg|ugh|quick q"
    r"|quick one|@\w+)\W+){0,2}"
)
_GREET = (
    r"(?:hi+|hello+|hey+|heya|hiya|yo|sup|howdy|greetings|g'?day|morning|evening|afternoon"
    r"|good (?:morning|afternoon|evening|day)|merry christmas|happy (?:\w+ )?(?:friday|monday"
    r"|weekend|new year|holidays|easter|christmas))"
)

DEFAULT_CUES: Mapping[str, tuple[Cue, ...]] = {
    "question": (
        Cue(r"\?", 1.5),
        # Yes/no questions open with an auxiliary verb ("do you ship", "is there", "r the").
        Cue(_LEAD + r"(?:do|does|did|is|are|was|were|will|should|has|have|r)\s+\w", 2.0),
        Cue(_LEAD + r"(?:can|could) (?:i|we)\b", 2.0),
        Cue(_LEAD + r"(?:what|whats|what's|when|where|wheres|where's|why|how|which|who)\b", 2.0),
        Cue(r"\b(?:anyone know|does anyone|wondering|curious whether|quick q\b|question)", 2.0),
    ),
    "complaint": (
        Cue(r"\b(?:still|again|yet another|third time)\b", 1.0),
        Cue(
            r"\b(?:never (?:arrived|came|got)|has(?:n'?t| not) (?:arrived|come)|not (?:arrived"
            r"|received)|didn'?t (?:arrive|come)|missing|lost|late|delayed|no ?one picks up"
            r"|no one (?:answers|replies)|zero repl\w*|no (?:reply|replies|response)|ignored"
            r"|on hold)\b",
            2.0,
        ),
        Cue(
            r"\b(?:broken?|broke|smashed|damaged|cracked|soaked|ripped|faulty|defective"
            r"|stopped (?:working|charging)|does(?:n'?t| not) work|not working|doesnt work"
            r"|won'?t (?:work|charge|turn on)|keeps? crashing|crash(?:es|ed)|invalid)\b",
            2.0,
        ),
        Cue(
            r"\b(?:wrong (?:size|item|order|colou?r|address)|someone else'?s|charged (?:me |my"
            r" card )?twice|double charged|overcharged|says? (?:delivered|in stock))",
            2.0,
        ),
        Cue(
            r"\b(?:terrible|awful|horrible|worst|unacceptable|ridiculous|disappoint\w*"
            r"|frustrat\w*|not impressed|notimpressed|a joke|smh|fed up|give up|not ok(?:ay)?"
            r"|rubbish|cheap(?:ly made)?|how you treat)\b",
            1.5,
        ),
        Cue(r"\b(?:waiting|waited|\d+ (?:days|weeks|months)|refund)\b", 1.0),
    ),
    "praise": (
        Cue(
            r"\b(?:love|loving|loved|luv|amazing|awesome|brilliant|fantastic|gorgeous|perfect"
            r"|lovely|superb|excellent|(?<!not )impressed|obsessed|legend|hero|kudos|props"
            r"|shout ?out|10/10|5 stars?|five stars|best|comfy|great job|well done|keep it up"
            r"|never miss|recommend|big fan|so good|smoother)\b",
            2.0,
        ),
        Cue(r"\b(?:thank(?:s|you+| you+| u+)?|thx|ty|appreciate[sd]?|cheers)\b", 1.5),
        Cue(r"[😍🥰❤💕💖👏🙌⭐🌟]", 1.0),
    ),
    "request": (
        Cue(r"\b(?:please+|pleas+e+|pls|plz|kindly)\b", 2.0),
        Cue(r"\b(?:can|could|would|will) (?:you|u|someone|somebody|ya)\b", 2.0),
        Cue(
            r"\b(?:would you mind|i'?d like to|i would like to|i (?:want|need) (?:a|an|to|my)"
            r"|need (?:a|an|to|my)|i wanna)\b",
            2.0,
        ),
        # Imperatives opening the message: "cancel my order", "add me to the list".
        Cue(
            r"^\W*(?:@\w+\s+)?(?:cancel|send|resend|add|remove|update|change|check|reserve"
            r"|bring back|restock|swap|process|refund|dm|call|email|fix|delete|unsubscribe"
            r"|make)\b",
            2.0,
        ),
        Cue(
            r"\b(?:cancel|resend|replacement|exchange|swap|unsubscribe|invoice|restock|waitlist"
            r"|update (?:my|it)|change my|dm me|call me|email me)\b",
            1.0,
        ),
    ),
    "greeting": (
        # An opening greeting is weak evidence: "hey, can you check my order" is a request.
        Cue(r"^\W*" + _GREET + r"\b", 1.5),
        # The whole message is greetings, maybe with "there", "all", a mention or emoji.
        Cue(
            r"^\W*" + _GREET + r"(?:[\s,!.]+(?:there|all|everyone|team|folks|guys|again|lol"
            r"|@\w+|\w+ fam|" + _GREET + r"))*[\W_]*$",
            3.0,
        ),
        Cue(r"\b(?:hope (?:you're|you are|ur) (?:all )?(?:well|good)|new follower)\b", 1.0),
    ),
    "spam": (
        Cue(
            r"\b(?:follow (?:me|us|back)|follow4follow|f4f|sub4sub|sub to my|check (?:out )?my"
            r" (?:profile|page|channel|store|bio)|link in (?:my )?bio|dm (?:me|us) for|dm to"
            r"|click (?:here|the link)|(?:free|buy|cheap) followers|giveaways?|promo)\b",
            2.5,
        ),
        Cue(
            r"(?:\$\d[\d,.]*k?\s*(?:/|per |a )\s*(?:day|week|hour)|\b(?:earn|make|made) \$"
            r"|\b\d+% (?:gains|off)|\bguaranteed|\bcrypto|\bbitcoin|\bbtc\b|\bforex"
            r"|investment opportunity|passive income|from home\b|earn commission)",
            2.5,
        ),
        Cue(
            r"\b(?:you (?:have )?won|you(?:'ve| have) been selected|claim your|congratulations"
            r"|prize|gift cards?|hot singles|lose \d+ ?kg|brand ambassadors?|collab|essays?"
            r"|followers)\b",
            2.0,
        ),
        Cue(r"(?:https?://|www\.|bit\.ly|\bt\.co/|\.(?:biz|shop|xyz|top|click)\b)", 2.0),
        Cue(r"(@\w+)(?:\W+\1\b)+", 1.5),  # the same handle tagged repeatedly
    ),
    "abuse": (
        Cue(
            r"\b(?:idiots?|morons?|stupid|dumb(?:ass)?|clowns?|losers?|pathetic|incompetent"
            r"|crooks?|liars?|lying|useless|garbage|trash|scum|imbeciles?|jerks?)\b",
            2.5,
        ),
        Cue(r"🤡|🖕", 2.5),
        Cue(
            r"\b(?:f\W?u?ck (?:off|you|u)|screw (?:you|u)|go to hell|shut up|stfu|eat shit"
            r"|piece of shit|up your ass|kys|kill yourself|die)\b|\bhope your \w+ (?:burns|dies"
            r"|fails|goes bust)",
            3.0,
        ),
        Cue(r"\b(?:fuck\w*|shit\w*|asshole|bitch\w*|bastards?|crap)\b", 1.0),
        Cue(r"\b(?:you people|you(?:'re| are) all|u r a|bunch of)\b", 1.0),
    ),
}

DEFAULT_POLARITY: Mapping[str, Polarity] = {
    "complaint": Polarity(negative=2.0),
    "praise": Polarity(positive=2.0),
    "abuse": Polarity(negative=0.5),
}


@dataclass(frozen=True)
class IntentRules:
    """Cues and priors for every label the rules know about.

    `other_prior` is the logit of "other" (which has no cues); a label needs more than that much
    evidence to win. `polarity` maps labels to sentiment evidence.
    """

    cues: Mapping[str, Sequence[Cue]] = field(default_factory=lambda: dict(DEFAULT_CUES))
    polarity: Mapping[str, Polarity] = field(default_factory=lambda: dict(DEFAULT_POLARITY))
    other_prior: float = 1.5

    def __post_init__(self) -> None:
        if OTHER in self.cues:
            raise ValueError("'other' is the fallback label and takes no cues; set other_prior")
        for label, cues in self.cues.items():
            for cue in cues:
                try:
                    re.compile(cue.pattern)
                except re.error as exc:
                    raise ValueError(
                        f"cue {cue.pattern!r} of {label!r} is not a regex: {exc}"
                    ) from exc
                if _UPPER_LITERAL.search(cue.pattern):
                    raise ValueError(
                        f"cue {cue.pattern!r} of {label!r} has upper-case letters; cues see the "
                        "lower-cased text, so write them in lower case"
                    )

    def compile(self, labels: Sequence[str]) -> CompiledRules:
        """Keep only the cues of `labels`; labels without cues get evidence 0 (or `other_prior`)."""
        return CompiledRules(
            labels=tuple(labels),
            cues={
                label: tuple((re.compile(c.pattern), c.weight) for c in self.cues.get(label, ()))
                for label in labels
                if label != OTHER
            },
            polarity={k: v for k, v in self.polarity.items() if k in labels},
            other_prior=self.other_prior,
        )


@dataclass(frozen=True, slots=True)
class CompiledRules:
    labels: tuple[str, ...]
    cues: Mapping[str, tuple[tuple[re.Pattern[str], float], ...]]
    polarity: Mapping[str, Polarity]
    other_prior: float

    def logits(self, text: str, compound: float) -> list[float]:
        """Evidence per label, in `labels` order."""
        text = text.lower()
        out: list[float] = []
        for label in self.labels:
            if label == OTHER:
                out.append(self.other_prior)
                continue
            total = sum(weight for pattern, weight in self.cues[label] if pattern.search(text))
            pol = self.polarity.get(label)
            if pol is not None:
                total += pol.positive * max(compound, 0.0) + pol.negative * max(-compound, 0.0)
            out.append(total)
        return out
