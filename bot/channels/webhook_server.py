"""A small HTTP endpoint that receives platform pushes (Telegram webhooks) on tornado.

Unlike PTB's built-in webhook server, it answers 200 only after the update is committed:
the callback returns True once stored, and anything else gives a 500 so the platform
delivers it again. A missing or wrong secret gives 403 before the body is looked at, and
bodies over the cap are refused.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
OnPush = Callable[[dict[str, Any]], Awaitable[bool]]


class _PushHandler(RequestHandler):
    def initialize(self, secret: str, max_body: int, on_push: OnPush) -> None:
        self._secret = secret.encode()
        self._max_body = max_body
        self._on_push = on_push

    def check_xsrf_cookie(self) -> None:  # a machine-to-machine endpoint: no cookies
        return None

    async def post(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook push refused: wrong or missing secret token")
            self._reply(403, "forbidden")
            return
        if len(self.request.body) > self._max_body:
            self._reply(413, "request body too large")
            return
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type != "application/json":
            self._reply(415, "expected application/json")
            return
        try:
            data = json.loads(self.request.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._reply(400, "body is not JSON")
            return
        if not isinstance(data, dict):
            self._reply(400, "body is not a JSON object")
            return
        stored = await self._on_push(data)
        if stored:
            self._reply(200, "ok")
        else:
            self._reply(500, "not stored; deliver again")

    def _reply(self, status: int, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text)


class WebhookServer:
    """Listens on `listen:port` at `path`. Start and stop inside the running event loop."""

    def __init__(
        self,
        *,
        listen: str,
        port: int,
        path: str,
        secret: str,
        max_body: int,
        on_push: OnPush,
    ) -> None:
        app = Application(
            [
                (
                    path or "/",
                    _PushHandler,
                    {"secret": secret, "max_body": max_body, "on_push": on_push},
                )
            ]
        )
        # Bodies over the cap get a 413 from the handler; far larger ones (8x) are cut off by
        # tornado before they are read into memory at all.
        self._server = HTTPServer(app, max_body_size=8 * max_body, idle_connection_timeout=75)
        self._listen = listen
        self._port = port

    def start(self) -> None:
        sockets = bind_sockets(self._port, address=self._listen)
        self._port = int(sockets[0].getsockname()[1])  # the real port when asked for 0
        self._server.add_sockets(sockets)

    @property
    def port(self) -> int:
        return self._port

    async def stop(self) -> None:
        self._server.stop()
        await self._server.close_all_connections()
