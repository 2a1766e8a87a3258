"""A fake Telegram Bot API server: real python-telegram-bot talks HTTP to it.

Point PTB at it with ``ApplicationBuilder().base_url(client.bot_base_url)`` or
``Bot(client.token, base_url=client.bot_base_url)``. The fake keeps all of its state (pending
updates, the offset, every call the bot made, fault rules) in the server, which runs either in
a background thread with its own event loop (:class:`FakeBotApiServer`) or in a subprocess
(:class:`FakeBotApiProcess`, ``python -m benchmarks.fake_bot_api --port 0``), so a bot
process can be killed and restarted while the server keeps going. Tests drive and inspect it
through a small JSON control API under ``/_control/<action>``, wrapped by
:class:`FakeBotApiClient`::

    with FakeBotApiServer() as server, server.client() as api:
        api.add_chat(moderators)
        api.inject(factories.group_mention(group, alice, "hi"))
        api.rate_limit(group.id, retry_after=5, count=1)
        ...  # run the bot against api.bot_base_url
        sent = api.wait_for_calls(1, chat_id=group.id)
        assert sent[0].reply_to_message_id == ...

Bot API behaviour follows https://core.telegram.org/bots/api where PTB depends on it: the
``{"ok": ..., "result"/"error_code"/"description"/"parameters"}`` envelope, getUpdates offsets
(an update is confirmed by any later call whose offset is above its id), long polling, 409 while
a webhook is set or when a newer getUpdates call takes over, and webhook pushes with the secret
header.

Control actions (POST JSON to ``/_control/<action>``, answer ``{"ok": true, "result": ...}``):
config, reset, add_chat, inject, pending_updates, calls, wait_calls, messages, counters,
get_updates_log, add_fault, faults, remove_fault, clear_faults, webhook, webhook_deliveries,
push_raw, save, shutdown; each is a ``FakeBotApi._control_<action>`` method.

With ``state_file`` set, the state is loaded at start and saved every ``autosave_interval``
seconds and at shutdown (SIGTERM), so even the fake itself can be restarted.

Limitations: MarkdownV2/Markdown texts are not validated; text length counts code points;
webhook pushes are sequential (one connection) and give up after ``webhook_max_attempts``;
inline messages (``inline_message_id``), file uploads and methods not listed in
``FakeBotApi.__init__`` are not modelled (unknown methods answer 404 and are recorded).

Modules: :mod:`.state` (config, errors, fault rules, state), :mod:`.params` (request decoding,
parse_mode=HTML), :mod:`.core`, :mod:`.methods`, :mod:`.updates`, :mod:`.control` and
:mod:`.api` (the :class:`FakeBotApi` behaviour), :mod:`.server` (HTTP layer, thread and
subprocess runners), :mod:`.cli` (``python -m``), :mod:`.client` and :mod:`.results` (the test
side). Import everything from this package.
"""

from benchmarks.fake_bot_api.api import FakeBotApi
from benchmarks.fake_bot_api.cli import main
from benchmarks.fake_bot_api.client import FakeBotApiClient, FakeBotApiControlError, wait_until
from benchmarks.fake_bot_api.core import Reply
from benchmarks.fake_bot_api.params import coerce_params, parse_html
from benchmarks.fake_bot_api.results import Counters, RecordedCall, WebhookPush
from benchmarks.fake_bot_api.server import (
    READY_PREFIX,
    REPO_ROOT,
    FakeBotApiProcess,
    FakeBotApiServer,
    make_app,
    serve,
)
from benchmarks.fake_bot_api.state import (
    BLOCKED,
    CHAT_ACTIONS,
    MAX_CALLBACK_DATA_BYTES,
    MAX_TEXT_LENGTH,
    MESSAGE_KINDS,
    NOT_FOUND,
    OPT_IN_UPDATES,
    POLL_CONFLICT,
    WEBHOOK_CONFLICT,
    BotApiError,
    ChatId,
    ControlError,
    FakeBotApiConfig,
    FakeBotApiState,
    FaultAction,
    FaultRule,
    JSONDict,
)

__all__ = [
    "BLOCKED",
    "CHAT_ACTIONS",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_TEXT_LENGTH",
    "MESSAGE_KINDS",
    "NOT_FOUND",
    "OPT_IN_UPDATES",
    "POLL_CONFLICT",
    "READY_PREFIX",
    "REPO_ROOT",
    "WEBHOOK_CONFLICT",
    "BotApiError",
    "ChatId",
    "ControlError",
    "Counters",
    "FakeBotApi",
    "FakeBotApiClient",
    "FakeBotApiConfig",
    "FakeBotApiControlError",
    "FakeBotApiProcess",
    "FakeBotApiServer",
    "FakeBotApiState",
    "FaultAction",
    "FaultRule",
    "JSONDict",
    "RecordedCall",
    "Reply",
    "WebhookPush",
    "coerce_params",
    "main",
    "make_app",
    "parse_html",
    "serve",
    "wait_until",
]
