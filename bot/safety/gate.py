"""The safety gate: toxicity plus every registered check, folded into one `Verdict` per text.

- block:  toxicity >= toxicity_block (never sent);
- review: toxicity >= toxicity_review (flag "toxic") or any other flag;
- allow:  otherwise.
Incoming messages get the "input" checks (no length cap); drafts get the "draft" checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from bot.domain import Verdict, VerdictAction
from bot.safety.registry import Check, Limits, Stage, registered_checks
from bot.safety.toxicity import ProfanityCheckScorer, ToxicityScorer

if TYPE_CHECKING:
    from bot.config import Settings

TOXIC = "toxic"


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

    def flags(self, stage: Stage, texts: Sequence[str]) -> list[tuple[str, ...]]:
        """Flags of the text-only checks (no model), for callers that overlap the model."""
        checks = [c for c in self._checks if stage in c.stages]
        return [tuple(f for c in checks for f in c.check(text)) for text in texts]

    def decide(self, toxicity: float, flags: tuple[str, ...]) -> Verdict:
        """Fold a toxicity score and the check flags into a verdict."""
        if toxicity >= self.toxicity_review:
            flags = (TOXIC, *flags)
        if toxicity >= self.toxicity_block:
            action = VerdictAction.BLOCK
        elif flags:
            action = VerdictAction.REVIEW
        else:
            action = VerdictAction.ALLOW
        return Verdict(action=action, toxicity=toxicity, flags=flags)

    def _check(self, stage: Stage, texts: Sequence[str]) -> list[Verdict]:
        pending = self.toxicity.submit(texts)  # a worker scores while the checks run here
        flags = self.flags(stage, texts)
        return [self.decide(t, f) for t, f in zip(pending.result(), flags, strict=True)]

    def check_inputs(self, texts: Sequence[str]) -> list[Verdict]:
        """Verdicts for incoming messages: toxicity, PII, language; no length cap."""
        return self._check("input", texts)

    def check_drafts(self, texts: Sequence[str]) -> list[Verdict]:
        """Verdicts for generated replies: the input checks plus length."""
        return self._check("draft", texts)

    def check_draft(self, text: str) -> Verdict:
        return self.check_drafts([text])[0]
