"""What a draft check may know besides the draft: the user's message, the persona, and the
account's own safety rules (thresholds and lists from its `[accounts.safety]` table).

Plain values, resolved once per account by `bot/accounts.py`; the gate takes one per call, so
one gate serves every account and a batch of inputs shares one context.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class SafetyRules:
    """One account's safety settings. A threshold of None means the process-wide one
    (AUTOREPLY_TOXICITY_REVIEW / _BLOCK). Lists are as configured (handles without '@',
    domains lower-cased without scheme or path)."""

    toxicity_review: float | None = None
    toxicity_block: float | None = None
    own_handle: str | None = None  # the account's @username: mentions of it are always fine
    allowed_domains: tuple[str, ...] = ()  # links to these domains and their subdomains
    allowed_handles: tuple[str, ...] = ()  # @mentions a reply may contain
    blocklist: tuple[str, ...] = ()  # words or phrases a reply must never contain
    commitment_phrases: tuple[str, ...] = ()  # extra phrases that count as commitments
    approved_phrases: tuple[str, ...] = ()  # commitments the brand has approved


@dataclass(frozen=True, slots=True)
class CheckContext:
    """The context of one check call; every part is optional (empty means unknown)."""

    user_text: str = ""  # the message the draft answers
    persona: str = ""  # the persona / system text the draft was generated under
    rules: SafetyRules = field(default_factory=SafetyRules)

    def replying_to(self, user_text: str) -> CheckContext:
        return replace(self, user_text=user_text)


NO_CONTEXT = CheckContext()
