"""Optional redaction of personal data in stored text (AUTOREPLY_REDACT_PII).

Messages as users wrote them and the model's drafts (text, raw output and every candidate) are
scrubbed with `bot.safety.pii.scrub` before they are stored, so e-mail addresses, phone, card
and IBAN numbers and URLs with a query string never reach the database; the pipeline handles
the scrubbed text from then on, so what is stored is what was analysed, drafted and sent.
Texts the operator configured (the fallback reply, a help line's number) and moderators' own
words are left alone: they are written on purpose.
"""

from __future__ import annotations

from dataclasses import replace

from bot.domain import Draft, Incoming
from bot.safety.pii import scrub


def redact_incoming(incoming: Incoming) -> Incoming:
    text = scrub(incoming.text)
    return incoming if text == incoming.text else replace(incoming, text=text)


def redact_draft(draft: Draft) -> Draft:
    candidates = tuple(
        replace(candidate, text=scrub(candidate.text), raw=scrub(candidate.raw))
        for candidate in draft.candidates
    )
    # A fallback draft's text is the operator's configured reply, written on purpose.
    text = draft.text if draft.fallback_used else scrub(draft.text)
    return replace(draft, text=text, raw=scrub(draft.raw), candidates=candidates)
