"""What a moderator sees beside a queued draft: the conversation before it, who wrote the
message (to ban them), the chat's handoff state and the classifiers' per-label scores.

Read-only, and called only after the moderation service has shown the draft to the actor
(`ModerationService.show` checks the account), so nothing here checks permissions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.domain import QueueItem, Turn
from bot.storage import history
from bot.storage import models as m


@dataclass(frozen=True, slots=True)
class DraftContext:
    turns: tuple[Turn, ...]  # oldest first, the queued message not included
    sender_id: str | None  # the platform's user id of whoever wrote the queued message
    sender_banned: bool
    handed_off: bool
    scores: dict[str, float] = field(default_factory=dict)  # "intent:question" -> probability


def for_item(session: Session, item: QueueItem, turns: int = 20) -> DraftContext:
    row = session.execute(
        select(m.PlatformUser.platform_user_id, m.PlatformUser.banned_at, m.Conversation)
        .select_from(m.Message)
        .join(m.Conversation, m.Message.conversation_id == m.Conversation.id)
        .outerjoin(m.PlatformUser, m.Message.user_id == m.PlatformUser.id)
        .where(m.Message.id == item.message_id)
    ).one()
    sender_id, banned_at, conversation = row
    scores = session.scalar(
        select(m.Analysis.scores).where(m.Analysis.message_id == item.message_id)
    )
    return DraftContext(
        turns=tuple(history.recent_turns(session, item.conversation_id, item.message_id, turns)),
        sender_id=sender_id,
        sender_banned=banned_at is not None,
        handed_off=conversation.handed_off_at is not None,
        scores={str(k): float(v) for k, v in (scores or {}).items()},
    )
