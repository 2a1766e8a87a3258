"""Text of the draft cards that moderators see in a chat (platform-neutral, plain text).

A card quotes the user's message, shows the analysis and the safety verdict, and the draft.
Long texts are shortened so a card always fits one platform message (4,096 characters on
Telegram) next to its buttons.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain import QueueItem

MESSAGE_CHARS = 2500
DRAFT_CHARS = 1200


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def card_text(item: QueueItem, reason: str | None = None) -> str:
    who = item.user_name or "unknown user"
    flags = ", ".join(dict.fromkeys(item.input_flags + item.flags)) or "none"
    lines = [
        f"Draft #{item.draft_id} needs review",
        f"Chat {item.chat_id} · from {who}",
        "",
        "Message:",
        _clip(item.message_text, MESSAGE_CHARS),
        "",
        f"Intent: {item.intent or '?'} ({(item.intent_score or 0):.2f}) · "
        f"Sentiment: {item.sentiment or '?'} ({(item.sentiment_score or 0):.2f})",
        f"Safety: {item.verdict} · toxicity {item.toxicity:.2f} · flags: {flags}",
    ]
    if reason:
        lines.append(f"Why queued: {reason}")
    if item.fallback_used:
        lines.append("Note: the model gave no usable text; this is the fallback reply.")
    if item.blocked:
        lines.append(
            "Blocked: Approve is refused. Reply to this card with a new text (it is checked "
            f"again), or override: autoreply queue approve {item.draft_id} --override REASON"
        )
    lines += ["", "Draft:", _clip(item.draft_text, DRAFT_CHARS)]
    return "\n".join(lines)


def action_footer(action: str, moderator: str, when: datetime) -> str:
    """The line appended to a card once someone acted on it."""
    verb = {"approve": "Approved", "edit": "Edited and sent", "reject": "Rejected"}.get(
        action, action
    )
    return f"{verb} by {moderator} at {when.strftime('%Y-%m-%d %H:%M UTC')}"
