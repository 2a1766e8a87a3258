"""stdin/stdout channel: the default when no platform is configured, and `autoreply chat`.

Prints exactly one line per input message: the reply, `[queued for review] <draft>` or
`[ignored: <reason>]`. On a terminal it is a small REPL with a prompt.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import uuid
from typing import TYPE_CHECKING, BinaryIO, TextIO

from bot.channels.base import Channel
from bot.domain import ChatKind, DecisionAction, Incoming, Outgoing

if TYPE_CHECKING:
    from bot.core import Core

log = logging.getLogger(__name__)

QUIT_WORDS = frozenset({"/quit", "/exit"})
SEND_WAIT_S = 30.0


class ConsoleChannel(Channel):
    platform = "console"

    def __init__(
        self,
        *,
        account: str,
        source: BinaryIO | None = None,
        out: TextIO | None = None,
        interactive: bool = False,
        user: str | None = None,
    ) -> None:
        """`out=None` makes a write-only sink: replies approved later from the CLI are recorded
        as sent without printing, since nobody is at that console any more."""
        self.account = account
        self._source = source
        self._out = out
        self._interactive = interactive
        self._user = user or _login_name()
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._sent: dict[int, asyncio.Event] = {}

    @property
    def chat_id(self) -> str:
        # One conversation per local user, so history carries over between runs.
        return f"console:{self._user}"

    async def start(self, core: Core) -> None:
        if self._source is None:
            self._done.set()
            return
        self._task = asyncio.create_task(self._loop(core), name="console-channel")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._done.set()

    async def wait_closed(self) -> None:
        await self._done.wait()
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._task.result()  # re-raise a crash of the read loop

    async def send(self, message: Outgoing) -> str:
        if self._out is not None:
            self._write(message.text if not self._interactive else f"bot> {message.text}")
        if message.outbox_id is not None:
            self._sent.setdefault(message.outbox_id, asyncio.Event()).set()
        return uuid.uuid4().hex[:16]

    async def _loop(self, core: Core) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                raw = await loop.run_in_executor(None, self._read_line)
                if raw is None:
                    break
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if self._interactive and text.strip() in QUIT_WORDS:
                    break
                await self._one(core, text)
        finally:
            self._done.set()

    async def _one(self, core: Core, text: str) -> None:
        incoming = Incoming(
            platform=self.platform,
            account=self.account,
            chat_id=self.chat_id,
            message_id=uuid.uuid4().hex[:16],
            user_id=self._user,
            user_name=self._user,
            text=text,
            chat_kind=ChatKind.PRIVATE,
        )
        decision = await core.handle(incoming)
        if decision.action is DecisionAction.AUTO and decision.outbox_id is not None:
            sent = self._sent.setdefault(decision.outbox_id, asyncio.Event())
            try:
                await asyncio.wait_for(sent.wait(), SEND_WAIT_S)
            except TimeoutError:
                self._write(f"[send pending: outbox #{decision.outbox_id}]")
            finally:
                self._sent.pop(decision.outbox_id, None)
        elif decision.action is DecisionAction.REVIEW:
            self._write(f"[queued for review] {decision.reply_text or ''}".rstrip())
        else:
            self._write(f"[ignored: {decision.reason}]")

    def _read_line(self) -> bytes | None:
        assert self._source is not None
        if self._interactive:
            try:
                return input("you> ").encode("utf-8", errors="replace")
            except EOFError:
                return None
        line = self._source.readline()
        return line if line else None

    def _write(self, line: str) -> None:
        assert self._out is not None
        self._out.write(line + "\n")
        self._out.flush()


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"
