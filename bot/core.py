"""What a channel may ask of the core: one facade over the pipeline, moderation and commands.

Channels get a `Core` in `Channel.start` and speak only domain values through it; they never
touch the database or the outbox themselves. Every method that writes is a single unit of work
and is safe to call again for a redelivered update.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from bot import moderation
from bot.commands import CommandReply, answer_command
from bot.domain import ChatKind, Decision, Incoming
from bot.errors import InputError, InvalidStateError, NotFoundError, StorageError
from bot.outbox import Outbox
from bot.pipeline import Pipeline
from bot.storage import drafts as draft_store
from bot.storage import history, outbox_store
from bot.storage import models as m
from bot.storage.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModAction(StrEnum):
    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class ModResult:
    """Outcome of a moderator's action as a channel shows it."""

    ok: bool
    message: str
    status: str | None = None


class Core:
    def __init__(self, *, db: Database, pipeline: Pipeline, outbox: Outbox) -> None:
        self._db = db
        self.pipeline = pipeline
        self._outbox = outbox

    # --- user messages --------------------------------------------------------------------

    async def handle(self, incoming: Incoming) -> Decision:
        """Store and decide, returning the decision (console-style channels)."""
        with _storage_errors():
            return await self.pipeline.handle(incoming)

    async def accept(self, incoming: Incoming) -> Decision | None:
        """Store (commit) and decide in the background (platforms that must ack fast).

        Raises StorageError when the message could not be stored: the channel must not
        acknowledge the delivery then, so that the platform delivers it again.
        """
        with _storage_errors():
            return await self.pipeline.accept(incoming)

    async def _in_thread(self, work: Callable[[], T]) -> T:
        with _storage_errors():
            return await asyncio.to_thread(work)

    async def record_update(self, platform: str, account: str, update_id: int) -> bool:
        """Mark a delivery that carries no message as taken in. False if it was seen before."""

        def work() -> bool:
            with self._db.session() as s:
                return history.record_update(s, platform, account, update_id)

        return await self._in_thread(work)

    async def command(
        self, incoming: Incoming, name: str, args: str, *, is_moderator: bool, in_review_chat: bool
    ) -> CommandReply | None:
        """Answer a /command. Stored like any message (so a redelivery is a no-op) but never
        drafted by the model; the answer goes through the outbox. None for a redelivery."""

        def work() -> tuple[CommandReply, int] | None:
            with self._db.session() as s:
                stored = history.ingest(s, incoming)
                if stored.duplicate:
                    return None
                reply = answer_command(
                    s,
                    incoming,
                    stored,
                    name,
                    args,
                    is_moderator=is_moderator,
                    in_review_chat=in_review_chat,
                )
                if reply.text:
                    outbox_store.enqueue(
                        s,
                        account_id=stored.account_id,
                        conversation_id=stored.conversation_id,
                        text=reply.text,
                        draft_id=None,
                        reply_to_id=stored.message_id,
                        kind=m.OutboxKind.NOTICE,
                    )
                return reply, stored.conversation_id

        done = await self._in_thread(work)
        if done is None:
            return None
        reply, conversation_id = done
        if reply.text:
            self._outbox.notify(conversation_id)
        return reply

    # --- moderators -----------------------------------------------------------------------

    async def draft_for_card(
        self, platform: str, account: str, chat_id: str, platform_message_id: str
    ) -> int | None:
        """Which draft a card (a message the bot posted in the moderators' chat) belongs to."""

        def work() -> int | None:
            with self._db.session() as s:
                info = history.ensure_account(s, platform, account)
                conversation_id = history.ensure_conversation_id(
                    s, info.id, chat_id, ChatKind.GROUP, None
                )
                return outbox_store.draft_for_card(s, conversation_id, platform_message_id)

        return await self._in_thread(work)

    async def moderate(
        self, draft_id: int, action: ModAction, *, moderator: str, text: str | None = None
    ) -> ModResult:
        """Approve, edit or reject a queued draft. Refusals (already handled, unknown draft,
        empty edit) come back as ok=False with a message to show; nothing changes then."""

        def work() -> moderation.Outcome:
            if action is ModAction.APPROVE:
                return moderation.approve(self._db, draft_id, moderator=moderator)
            if action is ModAction.REJECT:
                return moderation.reject(self._db, draft_id, moderator=moderator)
            return moderation.edit(self._db, draft_id, text or "", moderator=moderator)

        try:
            outcome = await self._in_thread(work)
        except (InvalidStateError, NotFoundError) as exc:
            return ModResult(False, str(exc), await self._status(draft_id))
        except InputError as exc:
            return ModResult(False, str(exc))
        if outcome.outbox_id is not None:
            self._outbox.notify(outcome.conversation_id)
        log.info("draft %d %s by %s", draft_id, outcome.status.value, moderator)
        return ModResult(True, f"draft #{draft_id} {outcome.status.value}", outcome.status.value)

    async def refuse(self, draft_id: int, *, who: str, note: str) -> None:
        """Record a press by someone who may not moderate. Nothing else changes."""
        log.warning("refused moderation of draft %d by %s: %s", draft_id, who, note)

        def work() -> None:
            with self._db.session() as s:
                if s.get(m.ReplyDraft, draft_id) is not None:
                    draft_store.audit(
                        s, draft_id, moderator=who, action=m.ModerationKind.REFUSED, note=note
                    )

        await self._in_thread(work)

    async def _status(self, draft_id: int) -> str | None:
        def work() -> str | None:
            with self._db.session() as s:
                draft = s.get(m.ReplyDraft, draft_id)
                return draft.status.value if draft else None

        return await self._in_thread(work)


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Database failures reach channels as StorageError, which they treat as "try again"."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(
            f"the database is unavailable ({type(exc).__name__}); check AUTOREPLY_DATABASE_URL "
            "and that the database server is running"
        ) from exc
