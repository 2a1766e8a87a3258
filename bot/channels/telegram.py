"""Telegram channel on python-telegram-bot. The ONLY module that imports `telegram`.

Delivery is at-least-once in, exactly-once stored: PTB's own updater and webhook server
acknowledge updates before they are handled, so this channel runs its own getUpdates loop
(`ApplicationBuilder().updater(None)`) and its own webhook endpoint. Each update is committed
(keyed by account + update_id) before the offset moves past it or the webhook answers 200; a
redelivered update is then a no-op. Handlers are PTB's own and stay thin: they turn the update
into domain values and call one `Core` method.

Sending paces each chat on its own (bot/channels/rate_limit.py) instead of PTB's
AIORateLimiter, which pauses the whole bot on any chat's 429 and drops the message by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.accounts import Account
from bot.cards import action_footer
from bot.channels import callback_data
from bot.channels.base import Channel, SendError
from bot.channels.rate_limit import ChatRateLimiter
from bot.channels.text_split import clean_for_telegram, split_message
from bot.channels.webhook_server import WebhookServer
from bot.commands_chats import CHAT_COMMANDS
from bot.core import ModAction, ModResult
from bot.domain import Actor, ActorKind, ChatKind, Incoming, Outgoing, OutgoingKind, utcnow
from bot.errors import ChannelError, StorageError

if TYPE_CHECKING:
    from bot.core import Core

log = logging.getLogger(__name__)

ANONYMOUS_ADMIN_ID = 1087968824  # "GroupAnonymousBot": every anonymous admin shares this id
COMMANDS = ("start", "help", "id", "pause", "resume", "label", *CHAT_COMMANDS)
ALLOWED_UPDATES = ["message", "edited_message", "channel_post", "callback_query"]
POLL_BACKOFF_MAX_S = 30.0
MAX_UPDATE_FAILURES = 5  # then an update that cannot be stored is logged and skipped
PART_RETRIES = 5  # retries of the 2nd+ part of a split reply, which cannot be resent whole
TYPING_EVERY_S = 4.5  # Telegram shows "typing" for about 5 s
NOT_READY_RETRY_S = 1.0  # a send that finds the channel not connected tries again after this
Context = ContextTypes.DEFAULT_TYPE


class TelegramChannel(Channel):
    platform = "telegram"

    def __init__(self, account: Account) -> None:
        tg = account.telegram
        assert tg is not None and tg.token is not None
        token = tg.token.get_secret_value()
        self.account = account.name
        self.handle = account.handle  # the bot's id: stable across username changes
        self.review_chat_id = account.review_chat_id
        self._tg = tg
        self._disclosure = account.disclosure
        # Where the operator fixes a bad token: the account's variable, or the flat one.
        self._token_hint = (
            f"{tg.token_env or 'AUTOREPLY_TELEGRAM_TOKEN'} (account {account.name!r})"
        )
        self._moderators = account.moderator_ids - {ANONYMOUS_ADMIN_ID}
        self._key = callback_data.derive_key(token)
        builder = ApplicationBuilder().token(token).updater(None).connection_pool_size(64)
        if tg.base_url:
            builder = builder.base_url(tg.base_url)
        self._app: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self._limiter = ChatRateLimiter()
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._webhook: WebhookServer | None = None
        self._failed_updates: dict[int, BaseException | None] = {}
        self._stored_updates: set[int] = set()  # committed by a handler during _take
        self._failures: dict[int, int] = {}
        self._core: Core | None = None
        self._username = ""
        self._handlers_registered = False

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        """Connect and start receiving. Safe to call again after `stop` (a restart)."""
        self._core = core
        self._stopping.clear()
        if not self._handlers_registered:
            self._register_handlers()
            self._handlers_registered = True
        try:
            await self._app.initialize()  # getMe
        except InvalidToken as exc:
            raise ChannelError(
                f"Telegram refused the bot token; check {self._token_hint} (from @BotFather)"
            ) from exc
        except NetworkError as exc:
            raise ChannelError(
                f"account {self.account!r}: cannot reach the Telegram Bot API ({exc}); check "
                "the network or the account's base URL"
            ) from exc
        self._username = (self._app.bot.username or "").lower()
        self._ready.set()
        try:
            if self._tg.webhook_url:
                await self._start_webhook()
            else:
                # getUpdates answers 409 while a webhook is set; never drop what is pending.
                await self._app.bot.delete_webhook(drop_pending_updates=False)
        except TelegramError as exc:
            raise ChannelError(
                f"account {self.account!r}: Telegram refused to set up {self._mode()} ({exc}); "
                "check the webhook URL (a public https URL) or unset it to use polling"
            ) from exc
        if not self._tg.webhook_url:
            self._poller = asyncio.create_task(self._poll(), name="telegram-poll")
        log.info(
            "telegram channel of account %r started as @%s (%s)",
            self.account,
            self._username,
            self._mode(),
        )

    async def stop(self) -> None:
        """Stop taking updates; sending keeps working until `close`."""
        self._stopping.set()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._webhook is not None:
            await self._webhook.stop()

    async def close(self) -> None:
        if self._ready.is_set():
            self._ready.clear()
            await self._app.shutdown()

    async def wait_closed(self) -> None:
        if self._poller is not None:
            await self._poller  # re-raises a fatal polling error
        else:
            await self._stopping.wait()

    def _mode(self) -> str:
        return "webhook" if self._tg.webhook_url else "polling"

    # --- receiving ------------------------------------------------------------------------

    async def _poll(self) -> None:
        """getUpdates loop. The offset passed to Telegram confirms every update below it, so it
        only moves past an update once that update is committed."""
        offset: int | None = None
        backoff = 1.0
        timeout = self._tg.poll_timeout_s
        while not self._stopping.is_set():
            try:
                updates = await self._app.bot.get_updates(
                    offset=offset,
                    timeout=timeout,
                    read_timeout=timeout + 10,
                    allowed_updates=ALLOWED_UPDATES,
                )
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
                continue
            except InvalidToken as exc:
                raise ChannelError(
                    f"Telegram refused the bot token; check {self._token_hint}"
                ) from exc
            except TelegramError as exc:  # Conflict, NetworkError/TimedOut, server errors
                log.warning("getUpdates failed (%s); retrying in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(POLL_BACKOFF_MAX_S, backoff * 2)
                continue
            for update in updates:
                if await self._take_or_give_up(update):
                    offset = update.update_id + 1
                    backoff = 1.0
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(POLL_BACKOFF_MAX_S, backoff * 2)
                    break  # fetch it again: the offset has not moved past it

    async def _take_or_give_up(self, update: Update) -> bool:
        """True when the offset may move past this update: it is stored, or handling it
        failed so often that it would stall every chat behind it (then it is logged in
        full). While the database is down nothing is ever skipped: the loop waits."""
        error: BaseException | None
        try:
            if await self._take(update):
                self._failures.pop(update.update_id, None)
                return True
            error = self._failed_updates.get(update.update_id)
        except StorageError as exc:
            error = exc
        if isinstance(error, StorageError):
            log.warning(
                "update %d not stored: %s; waiting for the database", update.update_id, error
            )
            return False
        failures = self._failures.get(update.update_id, 0) + 1
        self._failures[update.update_id] = failures
        if failures < MAX_UPDATE_FAILURES:
            log.warning(
                "update %d not stored (try %d); fetching it again", update.update_id, failures
            )
            return False
        # Where it came from, not what it said: logs carry no message bodies at INFO and up.
        log.error(
            "giving up on update %d (%s) after %d failed tries so other chats are not held "
            "up; its last error: %r",
            update.update_id,
            _where(update),
            failures,
            error,
        )
        log.debug("content of the skipped update %d: %s", update.update_id, update.to_json())
        self._failures.pop(update.update_id, None)
        return True

    async def _take(self, update: Update) -> bool:
        """Run the handlers for one update; True once it is committed."""
        self._failed_updates.pop(update.update_id, None)
        await self._app.process_update(update)
        stored = update.update_id in self._stored_updates
        self._stored_updates.discard(update.update_id)
        if update.update_id in self._failed_updates:
            return False
        if not stored:  # no handler stored it (channel posts, stickers, ...): mark it taken
            assert self._core is not None
            await self._core.record_update(self.platform, self.account, update.update_id)
        return True

    async def _start_webhook(self) -> None:
        tg = self._tg
        assert tg.webhook_url and tg.webhook_secret
        secret = tg.webhook_secret.get_secret_value()
        self._webhook = WebhookServer(
            listen=tg.webhook_listen,
            port=tg.webhook_port,
            path=urlsplit(tg.webhook_url).path or "/",
            secret=secret,
            max_body=tg.webhook_max_body,
            on_push=self._on_push,
        )
        self._webhook.start()  # listen first, then tell Telegram where to push
        # One connection at a time keeps pushes, and so each chat's messages, in order.
        await self._app.bot.set_webhook(
            tg.webhook_url,
            secret_token=secret,
            allowed_updates=ALLOWED_UPDATES,
            max_connections=1,
            drop_pending_updates=False,
        )

    async def _on_push(self, data: dict[str, Any]) -> bool:
        try:
            update = Update.de_json(data, self._app.bot)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("webhook push is not a Telegram update (%s); ignored", exc)
            return True  # a malformed push will not get better if Telegram resends it
        try:
            return await self._take(update)
        except StorageError as exc:  # answer 500: Telegram delivers it again later
            log.warning("pushed update %d not stored: %s", update.update_id, exc)
            return False

    def _register_handlers(self) -> None:
        app = self._app
        app.add_handler(CallbackQueryHandler(self._on_button))
        app.add_handler(
            CommandHandler(list(COMMANDS), self._on_command, filters.UpdateType.MESSAGE)
        )
        if self.review_chat_id is not None:
            app.add_handler(
                MessageHandler(filters.Chat(int(self.review_chat_id)), self._on_review_chat)
            )
        app.add_handler(MessageHandler(filters.ALL, self._on_message))
        app.add_error_handler(self._on_error)

    async def _on_error(self, update: object, context: Context) -> None:
        """The one place handler errors are logged. The update is not acknowledged, so it is
        delivered again (and deduplicated if it was stored after all)."""
        if isinstance(update, Update):
            self._failed_updates[update.update_id] = context.error
        if isinstance(context.error, StorageError):  # logged once by the polling loop
            return
        log.error("handling a Telegram update failed", exc_info=context.error)

    async def _on_message(self, update: Update, context: Context) -> None:
        incoming = self._incoming(update)
        if incoming is None:
            return  # no text, a channel post, or chatter we don't keep: _take records it
        assert self._core is not None
        await self._core.accept(incoming)  # stores the update id with the message
        self._stored_updates.add(update.update_id)

    def _incoming(self, update: Update) -> Incoming | None:
        message = update.message or update.edited_message
        if message is None or message.chat.type == ChatType.CHANNEL:
            return None
        text = message.text if message.text is not None else message.caption
        if not text:
            return None
        private = message.chat.type == ChatType.PRIVATE
        addressed = private or self._mentions_bot(message)
        edited = update.edited_message is not None
        if edited and not self._tg.answer_edits:
            addressed = False
        if not addressed and not private and not self._tg.store_chatter:
            return None
        user = message.from_user
        sender_id = message.sender_chat.id if message.sender_chat else (user.id if user else 0)
        return Incoming(
            platform=self.platform,
            account=self.account,
            chat_id=str(message.chat.id),
            message_id=str(message.message_id),
            user_id=str(sender_id),
            text=text,
            user_name=_display_name(message),
            chat_kind=ChatKind.PRIVATE if private else ChatKind.GROUP,
            chat_title=message.chat.title,
            addressed=addressed,
            update_id=update.update_id,
            # An edit reuses the message id; its edit time orders the versions.
            edit_version=int(message.edit_date.timestamp()) if edited and message.edit_date else 0,
            reply_to_message_id=(
                str(message.reply_to_message.message_id) if message.reply_to_message else None
            ),
            sent_at=message.date,
        )

    def _mentions_bot(self, message: Message) -> bool:
        reply = message.reply_to_message
        if (
            reply is not None
            and reply.from_user is not None
            and reply.from_user.id == self._app.bot.id
        ):
            return True
        entities = message.parse_entities() if message.text else message.parse_caption_entities()
        for entity, value in entities.items():
            if entity.type == MessageEntity.MENTION and value.lower() == f"@{self._username}":
                return True
            if (
                entity.type == MessageEntity.TEXT_MENTION
                and entity.user
                and entity.user.id == self._app.bot.id
            ):
                return True
            if entity.type == MessageEntity.BOT_COMMAND and value.lower().endswith(
                f"@{self._username}"
            ):
                return True
        return False

    async def _on_command(self, update: Update, context: Context) -> None:
        message = update.message
        incoming = self._incoming(update)
        if message is None or incoming is None or not message.text:
            return
        word, _, args = message.text.partition(" ")
        name = word[1:].split("@", 1)[0]
        assert self._core is not None
        await self._core.command(
            incoming,
            name,
            args,
            actor=self._actor(message.from_user),
            in_review_chat=str(message.chat.id) == self.review_chat_id,
        )
        self._stored_updates.add(update.update_id)

    # --- moderators -----------------------------------------------------------------------

    def _actor(self, user: Any) -> Actor:
        """The sender as the moderation service knows them: a moderator of this account, or
        someone with no accounts (the service then refuses and audits whatever they try)."""
        if user is None:
            return Actor(ActorKind.TELEGRAM, "0", "unknown", accounts=frozenset())
        allowed = user.id in self._moderators and not user.is_bot
        return Actor(
            ActorKind.TELEGRAM,
            str(user.id),
            _moderator_name(user),
            accounts=frozenset({self.account}) if allowed else frozenset(),
        )

    async def _on_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None and self._core is not None
        fresh = await self._core.record_update(self.platform, self.account, update.update_id)
        self._stored_updates.add(update.update_id)
        if not fresh:
            return  # a redelivered press
        try:
            action, draft_id = callback_data.verify(query.data or "", self._key)
        except callback_data.BadCallbackData:
            log.warning("ignored a button press with unknown data from user %s", query.from_user.id)
            await _answer(query, "This button is no longer valid.")
            return
        actor = self._actor(query.from_user)
        # "edit" only asks for the text (sent as a reply to the card); it still goes through
        # the service, which refuses and audits a press by someone who may not moderate.
        result = await self._core.act(actor, draft_id, ModAction(action), text=None)
        if not actor.may_act_on(self.account):
            await _answer(query, "Only moderators can do this.", alert=True)
            return
        if action == "edit":
            await _answer(query, result.message, alert=True)
            return
        await _answer(query, result.message)
        card = query.message
        # A card whose buttons are already gone was closed by the first press: leave it be.
        if (
            isinstance(card, Message)
            and result.status not in (None, "queued")
            and (result.ok or card.reply_markup is not None)
        ):
            await self._close_card(card, _footer(result, action, actor.display))

    async def _on_review_chat(self, update: Update, context: Context) -> None:
        """Messages in the moderators' chat are never answered; a moderator's reply to a card
        (or to its edit prompt) is the edited text of that draft."""
        message = update.message
        assert self._core is not None
        if message is None or message.reply_to_message is None or not message.text:
            return
        fresh = await self._core.record_update(self.platform, self.account, update.update_id)
        self._stored_updates.add(update.update_id)
        if not fresh:
            return  # a redelivered edit
        card = message.reply_to_message
        user = message.from_user
        if user is None or card.from_user is None or card.from_user.id != self._app.bot.id:
            return
        draft_id = await self._core.draft_for_card(
            self.platform, self.account, str(message.chat.id), str(card.message_id)
        )
        if draft_id is None:
            return
        actor = self._actor(user)
        result = await self._core.act(actor, draft_id, ModAction.EDIT, text=message.text)
        if not actor.may_act_on(self.account):
            return  # refused and audited by the service; nothing to show in the group
        if result.ok or result.status not in (None, "queued"):
            await self._close_card(card, _footer(result, "edit", actor.display))
        if not result.ok:
            try:
                await message.reply_text(result.message)
            except TelegramError as exc:
                log.info("could not tell the moderator why the edit was refused: %s", exc)

    async def _close_card(self, card: Message, footer: str) -> None:
        """Append who acted and when, and remove the buttons (a second press does nothing)."""
        text = f"{card.text or ''}\n\n{footer}"
        try:
            await card.edit_text(text[:4096], reply_markup=None)
        except BadRequest as exc:  # e.g. "message is not modified" after a double press
            log.info("card %d not updated: %s", card.message_id, exc)

    # --- sending --------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        # Sending works from a successful connect until `close`, even while receiving is
        # stopped (a restart, or shutdown draining the outbox).
        return self._ready.is_set()

    async def send(self, message: Outgoing) -> str:
        if not self._ready.is_set():  # the outbox checks `ready` first; this is a late change
            raise SendError(
                f"account {self.account!r}: the Telegram channel is not connected",
                retry_after=NOT_READY_RETRY_S,
            )
        text = clean_for_telegram(message.text)
        if message.kind is OutgoingKind.REPLY and self._disclosure:
            text = f"{text}\n\n{self._disclosure}"
        parts = split_message(text) or ["…"]
        markup = None
        if message.kind is OutgoingKind.CARD and message.draft_id is not None:
            markup = self._card_buttons(message.draft_id, own_reply=message.own_reply)
            parts = [parts[0]]  # cards are clipped to one message by bot/cards.py
        first_id = ""
        for index, part in enumerate(parts):
            reply = None
            if index == 0 and message.reply_to_message_id and message.reply_to_message_id.isdigit():
                reply = ReplyParameters(
                    int(message.reply_to_message_id), allow_sending_without_reply=True
                )
            sent_id = await self._send_part(message.chat_id, part, reply, markup, index)
            first_id = first_id or sent_id
        return first_id

    def _card_buttons(self, draft_id: int, *, own_reply: bool = False) -> InlineKeyboardMarkup:
        def button(label: str, action: str) -> InlineKeyboardButton:
            return InlineKeyboardButton(
                label, callback_data=callback_data.sign(action, draft_id, self._key)
            )

        if own_reply:  # no draft to approve; "edit" asks for the moderator's own text
            return InlineKeyboardMarkup([[button("Reply", "edit"), button("Reject", "reject")]])
        return InlineKeyboardMarkup(
            [[button("Approve", "approve"), button("Edit", "edit"), button("Reject", "reject")]]
        )

    async def _send_part(
        self,
        chat_id: str,
        text: str,
        reply: ReplyParameters | None,
        markup: InlineKeyboardMarkup | None,
        index: int,
    ) -> str:
        """Send one part. The first part's failures go back to the outbox (which retries
        the whole row); a later part can't be retried that way without posting the earlier
        parts twice, so it waits out rate limits here and is in doubt if it still fails."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._limiter.slot(chat_id, group=chat_id.startswith("-")):
                    sent = await self._app.bot.send_message(
                        int(chat_id), text, reply_parameters=reply, reply_markup=markup
                    )
                return str(sent.message_id)
            except TelegramError as exc:
                error = _send_error(exc)
                if index == 0:
                    raise error from exc
                if error.retry_after is not None and attempt <= PART_RETRIES:
                    await asyncio.sleep(error.retry_after)
                    continue
                raise SendError(
                    f"part {index + 1} of a split reply failed ({exc}); earlier parts were sent",
                    in_doubt=True,
                ) from exc

    @contextlib.asynccontextmanager
    async def _typing(self, chat_id: str) -> AsyncIterator[None]:
        async def keep_typing() -> None:
            while True:
                try:
                    await self._app.bot.send_chat_action(int(chat_id), ChatAction.TYPING)
                except TelegramError as exc:  # cosmetic: never hold up the reply for it
                    log.debug("typing indicator failed in %s: %s", chat_id, exc)
                await asyncio.sleep(TYPING_EVERY_S)

        task = asyncio.create_task(keep_typing(), name=f"typing-{chat_id}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def activity(self, incoming: Incoming) -> contextlib.AbstractAsyncContextManager[None]:
        if not self._ready.is_set():
            return contextlib.nullcontext()
        return self._typing(incoming.chat_id)


def _seconds(value: object) -> float:
    # With PTB_TIMEDELTA=1 time periods are timedeltas; without it, ints.
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


def _send_error(exc: TelegramError) -> SendError:
    """Map a PTB error to what the outbox may do about it."""
    if isinstance(exc, RetryAfter):
        return SendError(str(exc), retry_after=_seconds(exc.retry_after))
    if isinstance(exc, Forbidden):
        return SendError(str(exc), permanent=True, unreachable_user=True)
    if isinstance(exc, ChatMigrated):
        return SendError(f"group moved to chat {exc.new_chat_id}", permanent=True)
    if isinstance(exc, BadRequest | InvalidToken):
        return SendError(str(exc), permanent=True)
    if isinstance(exc, NetworkError):  # TimedOut included
        cause = exc.__cause__
        # Nothing reached Telegram: connecting failed or no pooled connection was free.
        if isinstance(cause, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
            return SendError(str(exc))
        if isinstance(exc, TimedOut) and cause is None:
            return SendError(str(exc))
        # A read/write timeout or a dropped connection: Telegram may have posted it.
        return SendError(f"{exc} (may have been delivered)", in_doubt=True)
    # Anything else (e.g. an unreadable answer) came after Telegram saw the request.
    return SendError(f"{exc} (may have been delivered)", in_doubt=True)


async def _answer(query: Any, text: str, *, alert: bool = False) -> None:
    try:
        await query.answer(text[:200], show_alert=alert)
    except TelegramError as exc:  # the press may be too old to answer; nothing to undo
        log.info("could not answer a button press: %s", exc)


def _where(update: Update) -> str:
    """Ids that let an operator find a skipped update: chat, message and sender."""
    message = update.effective_message
    user = update.effective_user
    parts = [f"chat {message.chat_id}, message {message.message_id}"] if message else []
    if user is not None:
        parts.append(f"from user {user.id}")
    return ", ".join(parts) or "no message"


def _footer(result: ModResult, action: str, who: str) -> str:
    if result.ok:
        return action_footer(action, who, utcnow())
    return f"Already {result.status or 'handled'}: nothing changed ({who} tried to {action})"


def _display_name(message: Message) -> str | None:
    if message.sender_chat is not None:
        return message.sender_chat.title
    user = message.from_user
    if user is None:
        return None
    return f"@{user.username}" if user.username else user.full_name


def _moderator_name(user: Any) -> str:
    handle = f"@{user.username}" if getattr(user, "username", None) else user.full_name
    return f"{handle} ({user.id})"
