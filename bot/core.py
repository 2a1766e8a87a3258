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

from bot.commands import CommandReply, answer_command
from bot.domain import Actor, ChatKind, Decision, Incoming, Outcome, OutgoingKind
from bot.errors import (
    InputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
    StorageError,
)
from bot.moderation import ModerationService
from bot.outbox import Outbox
from bot.pipeline import Pipeline
from bot.storage import accounts as account_store
from bot.storage import history, outbox_store
from bot.storage.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModAction(StrEnum):
    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class ModResult:
    """Outcome of a moderator's action as a channel shows it. `status` is the draft's state
    (None when there is no such draft)."""

    ok: bool
    message: str
    status: str | None = None


class Core:
    def __init__(
        self, *, db: Database, pipeline: Pipeline, outbox: Outbox, moderation: ModerationService
    ) -> None:
        self._db = db
        self.pipeline = pipeline
        self._outbox = outbox
        self.moderation = moderation

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
        """`account` is the account's name."""
        """Mark a delivery that carries no message as taken in. False if it was seen before."""

        def work() -> bool:
            with self._db.session() as s:
                return history.record_update(s, platform, account, update_id)

        return await self._in_thread(work)

    async def command(
        self, incoming: Incoming, name: str, args: str, *, actor: Actor, in_review_chat: bool
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
                    actor=actor,
                    in_review_chat=in_review_chat,
                    moderation=self.moderation,
                )
                if reply.text:
                    outbox_store.enqueue(
                        s,
                        account_id=stored.account_id,
                        conversation_id=stored.conversation_id,
                        text=reply.text,
                        draft_id=None,
                        reply_to_id=stored.message_id,
                        kind=OutgoingKind.NOTICE,
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
                info = account_store.ensure(s, platform, account)
                conversation_id = history.ensure_conversation_id(
                    s, info.id, chat_id, ChatKind.GROUP, None
                )
                return outbox_store.draft_for_card(s, conversation_id, platform_message_id)

        return await self._in_thread(work)

    async def act(
        self, actor: Actor, draft_id: int, action: ModAction, *, text: str | None = None
    ) -> ModResult:
        """Approve, edit or reject through the moderation service, for a channel's buttons.
        Refusals (not allowed, already handled, blocked, empty edit) come back as ok=False
        with a message to show; nothing changes then, and the service audited them."""

        def work() -> Outcome:
            if action is ModAction.EDIT and text is None:  # asks for the text; changes nothing
                return self.moderation.check(actor, draft_id, "edit")
            if action is ModAction.APPROVE:
                return self.moderation.approve(actor, draft_id)
            if action is ModAction.REJECT:
                return self.moderation.reject(actor, draft_id)
            return self.moderation.edit(actor, draft_id, text or "")

        try:
            outcome = await self._in_thread(work)
        except (InvalidStateError, NotFoundError, PermissionDeniedError) as exc:
            status = await self._in_thread(lambda: self.moderation.draft_status(draft_id))
            return ModResult(False, str(exc), status)
        except InputError as exc:
            return ModResult(False, str(exc))
        log.info("draft %d %s by %s", draft_id, outcome.status, actor.display)
        return ModResult(True, outcome.message, outcome.status)


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
