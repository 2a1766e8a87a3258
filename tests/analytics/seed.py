"""Rows for the analytics tests, written straight through the ORM with chosen timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from bot.domain import (
    ActorKind,
    ChatKind,
    DecisionAction,
    DraftStatus,
    ModerationKind,
    Sentiment,
    VerdictAction,
)
from bot.storage import models as m


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A time in November 2026, UTC."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


class Seeder:
    def __init__(self, session: Session, account: str = "shop") -> None:
        self.s = session
        self.account = m.Account(name=account, platform="console", handle=account)
        session.add(self.account)
        session.flush()
        self.chat = m.Conversation(
            account_id=self.account.id, chat_id=f"{account}-chat", kind=ChatKind.PRIVATE
        )
        session.add(self.chat)
        session.flush()
        self.users: dict[str, m.PlatformUser] = {}
        self._ids = 0

    def user(self, name: str, *, banned: bool = False, erased: bool = False) -> m.PlatformUser:
        if name not in self.users:
            row = m.PlatformUser(
                account_id=self.account.id,
                platform_user_id=name,
                display_name=name,
                banned_at=at(1, 0) if banned else None,
                erased=erased,
            )
            self.s.add(row)
            self.s.flush()
            self.users[name] = row
        return self.users[name]

    def inbound(
        self,
        when: datetime,
        text: str = "hello",
        *,
        user: str = "ann",
        banned: bool = False,
        erased: bool = False,
        intent: str | None = None,
        sentiment: Sentiment = Sentiment.NEUTRAL,
        decision: DecisionAction | None = None,
        edit_of: m.Message | None = None,
    ) -> m.Message:
        self._ids += 1
        row = m.Message(
            account_id=self.account.id,
            conversation_id=self.chat.id,
            user_id=self.user(user, banned=banned, erased=erased).id,
            direction=m.Direction.INBOUND,
            platform_message_id=edit_of.platform_message_id if edit_of else f"p{self._ids}",
            edit_version=edit_of.edit_version + 1 if edit_of else 0,
            text=text,
            decision=decision,
            handled_at=when if decision else None,
            sent_at=when,
            created_at=when,
        )
        self.s.add(row)
        self.s.flush()
        if intent is not None:
            self.s.add(
                m.Analysis(
                    message_id=row.id,
                    intent=intent,
                    intent_score=0.9,
                    sentiment=sentiment,
                    sentiment_score=0.9,
                    input_verdict=VerdictAction.ALLOW,
                    model_version="test",
                )
            )
        return row

    def reply(self, to: m.Message, when: datetime) -> m.Message:
        row = m.Message(
            account_id=self.account.id,
            conversation_id=self.chat.id,
            direction=m.Direction.OUTBOUND,
            platform_message_id=f"out{to.id}-{when.timestamp()}",
            reply_to_id=to.id,
            text="an answer",
            addressed=False,
            sent_at=when,
            handled_at=when,
            created_at=when,
        )
        self.s.add(row)
        self.s.flush()
        return row

    def draft(self, to: m.Message, when: datetime) -> m.ReplyDraft:
        row = m.ReplyDraft(
            message_id=to.id,
            text="a draft",
            raw_text="a draft",
            status=DraftStatus.QUEUED,
            verdict=VerdictAction.ALLOW,
            model_version="test",
            created_at=when,
        )
        self.s.add(row)
        self.s.flush()
        return row

    def action(
        self,
        moderator: str,
        action: ModerationKind,
        when: datetime,
        draft: m.ReplyDraft | None = None,
        actor: ActorKind = ActorKind.WEB,
    ) -> None:
        self.s.add(
            m.ModerationAction(
                account_id=self.account.id,
                draft_id=draft.id if draft else None,
                actor_kind=actor.value,
                moderator=moderator,
                action=action,
                created_at=when,
            )
        )
        self.s.flush()
