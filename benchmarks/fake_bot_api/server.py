"""Serving the fake over HTTP (tornado), in a background thread or in a subprocess.

:func:`serve` runs the Bot API (``/bot<token>/<method>``) and the control API
(``/_control/<action>``) until told to stop; :class:`FakeBotApiServer` runs it in a daemon
thread, :class:`FakeBotApiProcess` as ``python -m benchmarks.fake_bot_api``.
"""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from tornado.http1connection import HTTP1Connection

from benchmarks.fake_bot_api.api import FakeBotApi
from benchmarks.fake_bot_api.client import FakeBotApiClient
from benchmarks.fake_bot_api.params import coerce_params
from benchmarks.fake_bot_api.state import (
    BotApiError,
    ControlError,
    FakeBotApiConfig,
    FakeBotApiState,
    JSONDict,
)

READY_PREFIX = "FAKE_BOT_API_READY"
# The folder holding the `benchmarks` package: the checkout, or site-packages when installed.
REPO_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------- HTTP layer


def _quiet_log(_handler: tornado.web.RequestHandler) -> None:
    """Tornado's access log would print the bot token with every URL."""


class _Handler(tornado.web.RequestHandler):
    def initialize(self, api: FakeBotApi) -> None:
        self.api = api
        self._gone = False
        self._closed: asyncio.Future[None] | None = None

    def on_connection_close(self) -> None:
        self._gone = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def closed_future(self) -> asyncio.Future[None]:
        """Completes when the client hangs up."""
        self._closed = asyncio.get_running_loop().create_future()
        if self._gone:
            self._closed.set_result(None)
        return self._closed

    def send_json(self, status: int, body: JSONDict) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class _BotApiHandler(_Handler):
    SUPPORTED_METHODS = ("GET", "POST")

    async def get(self, token: str, method: str) -> None:
        await self.post(token, method)

    async def post(self, token: str, method: str) -> None:
        closed = self.closed_future()
        if token != self.api.config.token:
            self.send_json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        try:
            params = coerce_params(self._raw_params())
        except BotApiError as err:
            self.send_json(err.code, err.envelope())
            return
        reply = await self.api.handle(method, params, closed)
        if reply.delay:
            await self.api.wait(reply.delay, closed)
        if closed.done():
            return  # The client hung up (read timeout): nobody to answer.
        if reply.body is None:
            connection = self.request.connection
            if isinstance(connection, HTTP1Connection):
                connection.stream.close()
            return
        self.send_json(reply.status, reply.body)

    def _raw_params(self) -> dict[str, Any]:
        request = self.request
        raw: dict[str, Any] = {k: v[-1].decode() for k, v in request.query_arguments.items()}
        if request.headers.get("Content-Type", "").startswith("application/json"):
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                raise BotApiError.bad_request("can't parse JSON request body") from None
            if not isinstance(body, dict):
                raise BotApiError.bad_request("the JSON request body must be an object")
            raw.update(body)
        else:  # Form-encoded or multipart; tornado has parsed both.
            raw.update({k: v[-1].decode() for k, v in request.body_arguments.items()})
            raw.update({k: f"<file {v[-1].filename}>" for k, v in request.files.items()})
        return raw


class _ControlHandler(_Handler):
    async def post(self, action: str) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
            result = await self.api.control(action, body)
        except (ControlError, ValueError, TypeError, KeyError) as err:
            self.send_json(400, {"ok": False, "description": f"{type(err).__name__}: {err}"})
            return
        self.send_json(200, {"ok": True, "result": result})


def make_app(api: FakeBotApi) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/bot([^/]+)/([A-Za-z]+)/?", _BotApiHandler, {"api": api}),
            (r"/_control/([a-z_]+)", _ControlHandler, {"api": api}),
        ],
        log_function=_quiet_log,
    )


async def serve(
    api: FakeBotApi,
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_ready: Callable[[int], None],
) -> None:
    """Serve ``api`` on ``host:port`` (0 picks a free port) until ``stop`` is set."""
    sockets = tornado.netutil.bind_sockets(port, host)
    server = tornado.httpserver.HTTPServer(make_app(api))
    server.add_sockets(sockets)
    try:
        await api.start(stop)
        on_ready(int(sockets[0].getsockname()[1]))
        await stop.wait()
    finally:
        server.stop()
        await api.close()
        await server.close_all_connections()


# --------------------------------------------------------------------- runners


class FakeBotApiServer:
    """Runs the fake in a daemon thread with its own event loop, for in-process tests."""

    def __init__(
        self, config: FakeBotApiConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or FakeBotApiConfig()
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> FakeBotApiClient:
        return FakeBotApiClient(self.url)

    def start(self, timeout: float = 10.0) -> FakeBotApiServer:
        if self._thread is not None:
            raise RuntimeError("this FakeBotApiServer is already running")
        self._thread = threading.Thread(target=self._run, name="fake-bot-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the fake Bot API did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"the fake Bot API failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        api = FakeBotApi(self.config, FakeBotApiState.load_or_new(self.config))

        def ready(port: int) -> None:
            self.port = port
            self._ready.set()

        await serve(api, host=self.host, port=self.port, stop=self._stop, on_ready=ready)

    def stop(self, timeout: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop is not None and thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the fake Bot API thread did not stop within {timeout}s")

    def __enter__(self) -> FakeBotApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class FakeBotApiProcess:
    """Runs ``python -m benchmarks.fake_bot_api`` so the fake outlives bot processes."""

    def __init__(
        self, config: FakeBotApiConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or FakeBotApiConfig()
        self.host = host
        self.port = port
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def client(self) -> FakeBotApiClient:
        return FakeBotApiClient(self.url)

    def start(self, timeout: float = 15.0) -> FakeBotApiProcess:
        if self._process is not None:
            raise RuntimeError("this FakeBotApiProcess is already running")
        command = [sys.executable, "-m", "benchmarks.fake_bot_api"]
        command += ["--host", self.host, "--port", str(self.port), *self.config.to_cli_args()]
        self._process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        readable, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if readable else ""
        if not line.startswith(READY_PREFIX):
            code = self.stop()
            raise RuntimeError(
                f"the fake Bot API process did not report ready within {timeout}s "
                f"(exit code {code}); its stderr is above"
            )
        self.url = line.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (the fake saves its state file), SIGKILL after ``timeout``; the exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def __enter__(self) -> FakeBotApiProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
