"""Prompt injection and jailbreak attempts in incoming messages (flag "injection").

The reply model reads the customer's text, so a message can try to steer it. Four families,
matched on the folded text (bot/safety/normalize.py) so that "I g n o r e", "іgnore" and
"1gn0re" count too. Phrasings follow the published heuristics of Rebuff and Vigil:
- override: a verb of the ignore family within a few words of an instruction-like object
  ("ignore all previous instructions", "forget your rules", "bypass the guardrails"); a
  first-person owner ("ignore my previous instructions about the delivery") is a customer
  correcting themselves, not an attack;
- role play: DAN and "developer mode", "pretend you have no restrictions", "you are now ...";
- extraction: asking for the system prompt, the persona or "the text above";
- smuggled instructions: chat-template markers, "note to the AI", "new instructions:" hidden
  in quoted or forwarded text.
Any one of them raises the flag: the message goes to a moderator instead of the model.
"""

from __future__ import annotations

import re
from typing import ClassVar

from bot.safety.normalize import Folded, fold
from bot.safety.registry import Check, Stage

# Up to `n` words in between ("ignore all of the previous ...").
_GAP3 = r"(?:\W+[\w']+){0,3}?\W+"
_GAP5 = r"(?:\W+[\w']+){0,5}?\W+"

_OVERRIDE_VERB = (
    r"(?:ignore|disregard|forget|override|overwrite|bypass|discard|abandon|neglect|overlook"
    r"|circumvent|evade|disable|deactivate|turn off|switch off|set aside|throw out|get around"
    r"|stop following|do not follow|don't follow|dont follow|no longer follow|stop obeying"
    r"|do not obey|don't obey|dont obey|jailbreak)"
)
_MODIFIER = (
    r"(?:previous|prior|above|earlier|preceding|initial|original|all|any|every|your|system"
    r"|these|those|given|foregoing|existing|default|built-in|hidden|safety|moderation"
    r"|content|ethical|openai|developer)"
)
_OBJECT = (
    r"(?:instructions?|prompts?|system prompt|system message|guidelines?|directives?"
    r"|programming|guardrails?|rules?|restrictions?|constraints?|filters?|policies|policy"
    r"|limitations?|safeguards?|training|conditioning|persona|safety (?:settings|measures)"
    r"|content policy|everything (?:above|before|else)|what you were told"
    r"|what you've been told|the above)"
)
_OVERRIDE = re.compile(rf"\b{_OVERRIDE_VERB}{_GAP5}(?:{_MODIFIER}{_GAP3})?{_OBJECT}\b")
_OVERRIDE_MODIFIED = re.compile(rf"\b{_MODIFIER}\b")
# "please ignore my previous instructions, the parcel can go next door"
_OWN = re.compile(r"\b(?:my|our|i gave|i sent|i wrote|i left|we gave|we sent)\b")
# "you ignore your own policies" is a complaint: the verb has a subject, so it is no command.
_SUBJECT = re.compile(
    r"\b(?:you|they|he|she|it|we|i|who|which|that|people|staff|always|never|often|still"
    r"|will not|won't|cannot|can't|didn't|did not|don't|do not)\W*$"
)
_COMMANDED = re.compile(
    r"(?:\byou (?:must|should|will|shall|have to|need to|are to|can)|\b(?:can|could|would|will)"
    r" you|\bi (?:want|need) you to|\bhow (?:do|can|could|would|to) (?:i|we|you|one)?)\W*$"
)

_NO_LIMITS = (
    r"(?:rules|restrictions|limits|limitations|filters|guidelines|morals|ethics|censorship"
    r"|boundaries|polic(?:y|ies)|programming|content policy|safeguards|guardrails)"
)
_ROLE_PLAY = re.compile(
    r"\b(?:"
    r"dan(?: mode)?\W+(?:do anything now|jailbreak)|do anything now|developer mode|dev mode"
    r"|god mode|sudo mode|jailbr[eo]a?k(?:en|ed|ing)?|unfiltered mode|uncensored mode"
    r"|evil (?:mode|confidant|twin|ai|bot|assistant)|(?:aim|stan|dude) (?:mode|prompt)"
    r"|you are now (?:dan|free|unfiltered|uncensored|unrestricted|unchained|jailbroken|evil"
    r"|in \w+ mode|no longer|not (?:an? )?(?:ai|assistant|bot|chatbot)|an? (?:ai|assistant|bot)"
    r" (?:with(?:out)?|that|who)|(?:an? )?(?:different|new) (?:ai|assistant|bot|persona|character))"
    r"|from now on,? you (?:are|will|must|shall|have|can)"
    r"|(?:pretend|imagine|act as if|act like|behave as if|behave like|roleplay|role-play"
    rf"|role play|play the role){_GAP5}(?:no|without|free of|free from|not bound by"
    rf"|no longer bound by|ignoring){_GAP3}?\W*{_NO_LIMITS}"
    r"|(?:pretend|imagine|act|behave|roleplay|role-play|role play|play)(?:\W+[\w']+){0,6}?\W+"
    r"(?:unrestricted|unfiltered|uncensored|jailbroken|unbound|amoral|unethical)"
    rf"|you (?:have|has) no {_NO_LIMITS}"
    r"|(?:no longer|not) (?:bound|restricted|limited) by (?:any|your|the|openai)"
    r"|stay in character|stay in (?:dan|developer) mode|enable (?:dan|developer|god) mode"
    r"|answer as (?:dan|both)|simulate (?:an? )?(?:unfiltered|uncensored|unrestricted)"
    r")"
)

_EXTRACT_VERB = (
    r"(?:what (?:is|are|was|were)|what's|tell me|show(?: me)?|reveal|print|repeat|output"
    r"|display|give me|share|leak|dump|write out|spell out|list|read back|recite|echo|copy"
    r"|paste|disclose|expose|quote)"
)
_EXTRACT_OBJECT = (
    r"(?:system (?:prompt|message|instructions?|text|rules)"
    r"|(?:your|the) (?:initial|hidden|secret|internal|developer|original|pre-?|full system)"
    r" ?(?:prompts?|instructions|rules|persona|guidelines|directives|programming)"
    r"|your (?:prompts?|instructions|programming|persona|configuration|directives|guardrails"
    r"|rules|guidelines)"
    r"|(?:the |all the |all )?(?:text|words|messages?|lines|instructions|content)"
    r" (?:above|before this|you were given|you were told)"
    r"|everything (?:above|before this)|what you were told|the beginning of (?:this|the)"
    r" (?:conversation|chat|prompt))"
)
_EXTRACT = re.compile(rf"\b{_EXTRACT_VERB}{_GAP3}{_EXTRACT_OBJECT}\b")
# "what are your instructions for returning a parcel?" asks about a process, not the prompt.
_EXTRACT_EXEMPT = re.compile(
    r"\W*(?:for|on|about|regarding|to)\b(?!\W*(?:this|the) (?:chat|conversation|bot|ai))"
)

_SMUGGLED = re.compile(
    r"<\|?(?:im_start|im_end|system|endoftext|assistant|user)\|?>|\[/?inst\]|<</?sys>>"
    r"|^\W*(?:system|assistant)\s*(?:prompt)?\s*:"
    r"|###\s*(?:system|instruction|new instructions?)"
    r"|\b(?:new|updated|real|actual|hidden|secret|additional) instructions?\s*:"
    r"|\b(?:note|message|instructions?) (?:to|for) (?:the )?(?:ai|assistant|bot|chatbot|llm"
    r"|language model|model)\b"
    r"|\bif you are an? (?:ai|llm|language model|assistant|bot|chatbot)\b"
    r"|\b(?:ai|assistant|chatbot|llm|language model)\W+(?:you must|you will|you should|please)"
    r" (?:now )?(?:ignore|reveal|say|reply|respond|output|print|write|send|tell)"
    r"|\bend of (?:the )?(?:system )?(?:prompt|instructions)\b"
    r"|\b(?:begin|start) (?:of )?(?:the )?(?:system prompt|new instructions)\b"
    r"|\byour new (?:task|instructions?|role|goal|objective|persona|rules?) (?:is|are)\b"
    r"|\b(?:reply|respond|answer) (?:only )?with (?:exactly|only|verbatim)\b"
    r"|\brepeat after me\b|\bsay exactly\b|\boutput the following\b",
    re.MULTILINE,
)


def _keys(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Each family of patterns needs one of its key words (or phrases): a message without any skips
# that family's patterns, which is most messages.
_OVERRIDE_KEYS = _keys(
    "ignore disregard forget override overwrite bypass discard abandon neglect overlook"
    " circumvent evade disable deactivate off aside throw around follow following obey obeying"
    " jailbreak"
)
_ROLE_PLAY_KEYS = _keys(
    "dan developer dev god sudo jailbreak jailbroken jailbreaking jailbreaked jailbrake jailbroke"
    " unfiltered uncensored unrestricted unchained evil aim stan dude mode pretend imagine act"
    " behave roleplay role play unbound amoral unethical character simulate bound restricted"
)
_ROLE_PLAY_PHRASES = (
    "now on", "are now", "anything now", "limited by", "as both", "have no", "has no",
)  # fmt: skip
_EXTRACT_KEYS = _keys(
    "system prompt prompts instructions rules persona guidelines directives programming"
    " configuration guardrails above told given beginning"
)
_EXTRACT_PHRASES = ("before this",)
_SMUGGLED_KEYS = _keys(
    "system assistant ai bot chatbot llm instructions instruction prompt task role goal"
    " objective persona rule rules exactly verbatim repeat following model"
)
_SMUGGLED_PHRASES = ("with only",)
_MARKERS = ("<", "[", "###")  # chat-template markers, before folding


def _is_command(text: str, match: re.Match[str]) -> bool:
    span = match.group()
    if not _OVERRIDE_MODIFIED.search(span) or _OWN.search(span):
        return False
    before = text[max(0, match.start() - 24) : match.start()]
    return bool(_COMMANDED.search(before)) or not _SUBJECT.search(before)


def looks_like_injection(folded: Folded) -> bool:
    """Whether the text tries to override, jailbreak or read out the model's setup."""
    text, words = folded.text, folded.words
    if not words.isdisjoint(_OVERRIDE_KEYS) and any(
        _is_command(text, m) for m in _OVERRIDE.finditer(text)
    ):
        return True
    if (
        not words.isdisjoint(_ROLE_PLAY_KEYS) or any(p in text for p in _ROLE_PLAY_PHRASES)
    ) and _ROLE_PLAY.search(text):
        return True
    if (
        not words.isdisjoint(_SMUGGLED_KEYS) or any(p in text for p in _SMUGGLED_PHRASES)
    ) and _SMUGGLED.search(text):
        return True
    if any(m in folded.plain for m in _MARKERS) and _SMUGGLED.search(folded.plain.lower()):
        return True  # read before folding too: "|" in "<|im_start|>" would become "l"
    if words.isdisjoint(_EXTRACT_KEYS) and not any(p in text for p in _EXTRACT_PHRASES):
        return False
    return any(not _EXTRACT_EXEMPT.match(text, m.end()) for m in _EXTRACT.finditer(text))


class InjectionCheck(Check):
    """Flags prompt-injection and jailbreak attempts in incoming messages."""

    name = "injection"
    stages: ClassVar[frozenset[Stage]] = frozenset({"input"})
    flags = ("injection",)

    def check(self, text: str) -> tuple[str, ...]:
        return ("injection",) if looks_like_injection(fold(text)) else ()
