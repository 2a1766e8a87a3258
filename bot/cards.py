"""Text of the draft cards that moderators see in a chat (platform-neutral, plain text).

A card quotes the user's message, shows the analysis (with how to correct it: /label), the
safety verdict and the draft; a best-of-n draft gets one line saying how many candidates were
sampled and why some were dropped (the full list is in `autoreply queue show ID`). Long texts
are shortened so a card always fits one platform message (4,096 characters on Telegram) next
to its buttons.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from bot.domain import DropReason, QueueItem

MESSAGE_CHARS = 2500
DRAFT_CHARS = 1200
# Limits count UTF-16 code units, as Telegram does (an emoji is two). A card stays under one
# message (4,096) less room for the footer added when someone acts (`action_footer`).
CARD_UNITS = 4096 - 200
NAME_CHARS = 64
REASON_CHARS = 300


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _clip(text: str, limit: int) -> str:
    """`text` in at most `limit` UTF-16 units, "…" included when it had to be cut."""
    if _units(text) <= limit:
        return text
    kept: list[str] = []
    used = 1  # the "…"
    for char in text:
        used += _units(char)
        if used > limit:
            break
        kept.append(char)
    return "".join(kept) + "…"


def card_text(item: QueueItem, reason: str | None = None) -> str:
    who = _clip(item.user_name or "unknown user", NAME_CHARS)
    flags = ", ".join(dict.fromkeys(item.input_flags + item.flags)) or "none"
    head = [
        f"Draft #{item.draft_id} needs review",
        f"Chat {item.chat_id} · from {who}",
        "",
        "Message:",
    ]
    tail = [
        "",
        f"Intent: {item.intent or '?'} ({(item.intent_score or 0):.2f}) · "
        f"Sentiment: {item.sentiment or '?'} ({(item.sentiment_score or 0):.2f})",
        f"Safety: {item.verdict} · toxicity {item.toxicity:.2f} · flags: {flags}",
    ]
    if len(item.candidates) > 1:
        tail.append(candidates_line(item))
    tail.append(label_help(item.draft_id))
    if reason:
        tail.append(f"Why queued: {_clip(reason, REASON_CHARS)}")
    if item.fallback_used:
        tail.append("Note: the model gave no usable text; this is the fallback reply.")
    if item.blocked:
        tail.append(
            "Blocked: Approve is refused. Reply to this card with a new text (it is checked "
            f"again), or override: autoreply queue approve {item.draft_id} --override REASON"
        )
    tail += ["", "Draft:", _clip(item.draft_text, DRAFT_CHARS)]
    # The quoted message gives way when the rest is long, so the draft is never cut off.
    room = CARD_UNITS - _units("\n".join([*head, *tail])) - 1
    message = _clip(item.message_text, min(MESSAGE_CHARS, room))
    return "\n".join([*head, message, *tail])


def label_help(draft_id: int) -> str:
    """How to correct the analysis above (bot/commands.py answers /label)."""
    return f"Wrong labels? Send /label {draft_id} intent=LABEL sentiment=LABEL"


def candidates_line(item: QueueItem) -> str:
    """The best-of-n line, e.g. `Candidates: best of 4 · 2 dropped (repetitive, blocked)`.

    Outranked candidates were fine, so they do not count as dropped. Each reason is named once
    (with a count), so the line stays short whatever n is."""
    reasons = Counter(
        c.dropped.value
        for c in item.candidates
        if c.dropped is not None and c.dropped is not DropReason.OUTRANKED
    )
    count = sum(reasons.values())
    which = ", ".join(reason if n == 1 else f"{reason} ×{n}" for reason, n in reasons.items())
    fate = f"{count} dropped ({which})" if count else "none dropped"
    return f"Candidates: best of {len(item.candidates)} · {fate}"


def action_footer(action: str, moderator: str, when: datetime) -> str:
    """The line appended to a card once someone acted on it."""
    verb = {"approve": "Approved", "edit": "Edited and sent", "reject": "Rejected"}.get(
        action, action
    )
    return f"{verb} by {moderator} at {when.strftime('%Y-%m-%d %H:%M UTC')}"
