"""The safety gate: toxicity plus every registered check, folded into one `Verdict` per text.

- block:  toxicity >= toxicity_block, or a draft raises one of BLOCKING_DRAFT_FLAGS (never
          sent: a moderator must edit, reject or override it);
- review: toxicity >= toxicity_review (flag "toxic") or any other flag; when the score falls
          under the threshold once the text's words for groups of people are replaced, the
          flag is "toxic_identity" and the text is reviewed, never blocked, for its toxicity
          (bot/safety/identity_terms.py: the profanity model's bias about such words);
- allow:  otherwise.
Incoming messages get the "input" checks (no length cap); drafts get the "draft" checks. A
`CheckContext` per call carries the user's message, the persona and the account's rules (its
own toxicity thresholds and lists), so one gate serves every account.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from bot.domain import Verdict, VerdictAction
from bot.safety.context import NO_CONTEXT, CheckContext
from bot.safety.identity_terms import TOXIC_IDENTITY, names_a_group, without_group_names
from bot.safety.registry import Check, Limits, Stage, registered_checks
from bot.safety.toxicity import ProfanityCheckScorer, ToxicityScorer

if TYPE_CHECKING:
    from bot.config import Settings

TOXIC = "toxic"
# Draft flags that block rather than ask: what must never reach a user even by mistake.
# Another sampled candidate or the fallback reply takes the draft's place (candidate_choice).
BLOCKING_DRAFT_FLAGS = frozenset({"pii_card", "pii_iban", "blocklisted", "persona_leak"})


class SafetyGate:
    """Judges texts. `checks` names the registered checks to run (default: all of them)."""

    def __init__(
        self,
        toxicity: ToxicityScorer,
        *,
        toxicity_review: float = 0.5,
        toxicity_block: float = 0.85,
        max_reply_chars: int = 600,
        checks: Iterable[str] | None = None,
    ) -> None:
        if not 0.0 <= toxicity_review <= toxicity_block <= 1.0:
            raise ValueError(
                f"need 0 <= toxicity_review ({toxicity_review}) <= toxicity_block "
                f"({toxicity_block}) <= 1; fix AUTOREPLY_TOXICITY_REVIEW/_BLOCK"
            )
        available = registered_checks()
        names = list(available) if checks is None else list(checks)
        unknown = sorted(set(names) - set(available))
        if unknown:
            raise ValueError(f"unknown safety checks {unknown}; registered: {sorted(available)}")
        limits = Limits(max_reply_chars=max_reply_chars)
        self.toxicity = toxicity
        self.toxicity_review = toxicity_review
        self.toxicity_block = toxicity_block
        self._checks: list[Check] = [available[name](limits) for name in names]

    @classmethod
    def from_settings(
        cls, settings: Settings, toxicity: ToxicityScorer | None = None
    ) -> SafetyGate:
        """A gate with the configured thresholds; in-process alt-profanity-check by default."""
        return cls(
            toxicity if toxicity is not None else ProfanityCheckScorer(),
            toxicity_review=settings.toxicity_review,
            toxicity_block=settings.toxicity_block,
            max_reply_chars=settings.max_reply_chars,
        )

    def flags(
        self, stage: Stage, texts: Sequence[str], context: CheckContext = NO_CONTEXT
    ) -> list[tuple[str, ...]]:
        """Flags of the checks (no model), for callers that overlap the model."""
        checks = [c for c in self._checks if stage in c.stages]
        return [tuple(f for c in checks for f in c.check_with(text, context)) for text in texts]

    def decide(
        self,
        toxicity: float,
        flags: tuple[str, ...],
        context: CheckContext = NO_CONTEXT,
        stage: Stage = "input",
        without_groups: float | None = None,
    ) -> Verdict:
        """Fold a toxicity score and the check flags into a verdict, with the account's
        thresholds where `context.rules` sets them. `without_groups` is the score of the text
        with its words for groups replaced (`group_blind_scores`), when it was needed."""
        review, block = self._thresholds(context)
        toxic_by_name = without_groups is not None and without_groups < review
        if toxicity >= review:
            flags = (TOXIC_IDENTITY if toxic_by_name else TOXIC, *flags)
        blocking = toxicity >= block and not toxic_by_name
        if blocking or (stage == "draft" and not BLOCKING_DRAFT_FLAGS.isdisjoint(flags)):
            action = VerdictAction.BLOCK
        elif flags:
            action = VerdictAction.REVIEW
        else:
            action = VerdictAction.ALLOW
        return Verdict(action=action, toxicity=toxicity, flags=flags)

    def _thresholds(self, context: CheckContext) -> tuple[float, float]:
        rules = context.rules
        review = self.toxicity_review if rules.toxicity_review is None else rules.toxicity_review
        block = self.toxicity_block if rules.toxicity_block is None else rules.toxicity_block
        return review, block

    def group_blind_scores(
        self, texts: Sequence[str], scores: Sequence[float], context: CheckContext = NO_CONTEXT
    ) -> list[float | None]:
        """For each text that the model finds toxic and that names a group of people, its
        score with those words replaced (one more call for those texts only); else None."""
        review, _ = self._thresholds(context)
        wanted = [
            i
            for i, (t, s) in enumerate(zip(texts, scores, strict=True))
            if s >= review and names_a_group(t)
        ]
        out: list[float | None] = [None] * len(texts)
        if wanted:
            again = self.toxicity.submit([without_group_names(texts[i]) for i in wanted])
            for i, score in zip(wanted, again.result(), strict=True):
                out[i] = score
        return out

    def _check(self, stage: Stage, texts: Sequence[str], context: CheckContext) -> list[Verdict]:
        pending = self.toxicity.submit(texts)  # a worker scores while the checks run here
        flags = self.flags(stage, texts, context)
        scores = pending.result()
        blind = self.group_blind_scores(texts, scores, context)
        return [
            self.decide(t, f, context, stage, b)
            for t, f, b in zip(scores, flags, blind, strict=True)
        ]

    def check_inputs(
        self, texts: Sequence[str], context: CheckContext = NO_CONTEXT
    ) -> list[Verdict]:
        """Verdicts for incoming messages: toxicity, PII, language; no length cap. Only the
        context's thresholds matter here."""
        return self._check("input", texts, context)

    def check_drafts(
        self, texts: Sequence[str], context: CheckContext = NO_CONTEXT
    ) -> list[Verdict]:
        """Verdicts for replies to one message (`context`): the input checks plus the draft
        ones (length, quality, links, blocklist, echo, persona leak, commitments)."""
        return self._check("draft", texts, context)

    def check_draft(self, text: str, context: CheckContext = NO_CONTEXT) -> Verdict:
        return self.check_drafts([text], context)[0]
