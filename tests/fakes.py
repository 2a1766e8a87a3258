"""Test doubles that subclass or implement the real interfaces (no mocks)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.accounts import Account
from bot.channels.base import Channel, SendError
from bot.config import DEFAULT_INTENTS
from bot.core import Core
from bot.domain import (
    Actor,
    ActorKind,
    ActorRole,
    Candidate,
    Draft,
    DraftRequest,
    DraftStatus,
    Incoming,
    Mode,
    Outgoing,
    ReplyStyle,
    Turn,
    Verdict,
    VerdictAction,
)
from bot.moderation import ModerationService
from bot.safety.context import NO_CONTEXT, CheckContext
from bot.storage import drafts as draft_store
from bot.storage import history
from bot.storage.db import Database

OPERATOR = Actor(ActorKind.CLI, "tester", "cli:tester", ActorRole.OPERATOR)


def account(
    name: str = "acct",
    *,
    platform: str = "console",
    mode: Mode = Mode.AUTO,
    user_cooldown_s: float = 0.0,
    labels: tuple[str, ...] = DEFAULT_INTENTS,
) -> Account:
    """An account as the config would resolve it, for tests that build parts by hand."""
    return Account(
        name=name,
        platform=platform,
        handle=name,
        mode=mode,
        style=ReplyStyle(),
        intent_labels=labels,
        disclosure=None,
        user_cooldown_s=user_cooldown_s,
        is_default=True,
    )


class AllowAll:
    """A draft checker that allows everything (moderation tests that are not about safety)."""

    def check_draft(self, text: str, context: CheckContext = NO_CONTEXT) -> Verdict:
        return Verdict(VerdictAction.ALLOW, 0.0)


def moderation(db: Database) -> ModerationService:
    """The moderation service with the real safety gate, as the CLI builds it."""
    from bot.config import Settings
    from bot.safety.gate import SafetyGate

    return ModerationService(db, gate=lambda: SafetyGate.from_settings(Settings()))


_PLATFORM_MESSAGE_IDS = itertools.count(1)


def queue_draft(
    db: Database,
    text: str = "where is my order?",
    reply: str = "It ships today.",
    *,
    account: str = "shop",
    platform: str = "console",
    chat_id: str = "500",
    user_id: str = "9",
    verdict: VerdictAction = VerdictAction.ALLOW,
    fallback_used: bool = False,
    candidates: tuple[Candidate, ...] = (),
    message_id: int | None = None,
) -> tuple[int, int]:
    """Take in a message and queue a draft replying to it, as the pipeline stores them;
    returns (message row id, draft id). `message_id` adds another draft to a stored message.
    On the console platform, `console_wake` delivers an approved reply at once."""
    with db.session() as s:
        if message_id is None:
            message_id = history.ingest(
                s,
                Incoming(
                    platform=platform,
                    account=account,
                    chat_id=chat_id,
                    message_id=f"m{next(_PLATFORM_MESSAGE_IDS)}",
                    user_id=user_id,
                    text=text,
                ),
            ).message_id
        draft_id = draft_store.create_draft(
            s,
            message_id=message_id,
            draft=Draft(
                text=reply,
                raw=reply,
                fallback_used=fallback_used,
                model="canned",
                candidates=candidates,
            ),
            verdict=Verdict(verdict, 0.99 if verdict is VerdictAction.BLOCK else 0.0),
            status=DraftStatus.QUEUED,
        )
    return message_id, draft_id


@dataclass
class Sent:
    message: Outgoing
    at: float


class RecordingChannel(Channel):
    """A channel that records what it sends; `fail` may raise SendError for chosen messages."""

    def __init__(
        self,
        platform: str = "console",
        account: str = "acct",
        fail: Callable[[Outgoing, int], SendError | None] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.platform = platform
        self.account = account
        self.sent: list[Sent] = []
        self.attempts: list[Outgoing] = []
        self.connected = True
        self._fail = fail
        self._delay = delay

    @property
    def ready(self) -> bool:
        return self.connected

    async def start(self, core: Core) -> None:
        self.core = core

    async def stop(self) -> None:
        return None

    async def send(self, message: Outgoing) -> str:
        self.attempts.append(message)
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._fail is not None:
            error = self._fail(message, len(self.attempts))
            if error is not None:
                raise error
        self.sent.append(Sent(message, asyncio.get_running_loop().time()))
        return f"p{len(self.sent)}"


@dataclass
class CannedDrafter:
    """Implements the pipeline's Drafter protocol with fixed replies, for policy tests."""

    text: str = "Thanks for reaching out, we are looking into it."
    fallback_used: bool = False
    calls: list[tuple[tuple[Turn, ...], str]] = field(default_factory=list)
    requests: list[DraftRequest] = field(default_factory=list)

    async def adraft(self, request: DraftRequest) -> Draft:
        self.calls.append((tuple(request.history), request.text))
        self.requests.append(request)
        return Draft(
            text=self.text,
            raw=self.text,
            fallback_used=self.fallback_used,
            model="canned",
        )
