"""Serving the dashboard with uvicorn: alone (`autoreply web`) or inside the service's event
loop (`autoreply run --web`).

uvicorn's `Server.serve` installs its own SIGINT/SIGTERM handlers (`capture_signals`) and
re-raises the signal when it ends. Inside the service that would take the signals from the
service's one shutdown path, so `EmbeddedServer` installs none: the caller's stop event sets
`should_exit`, and the server drains its connections and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.service import Running, WebServing
    from bot.web.context import Readiness
    from bot.web.metrics import PrometheusEvents

log = logging.getLogger(__name__)
GRACEFUL_SHUTDOWN_S = 5


class EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process's own handlers stay in place; stopping is the caller's stop event.
        yield


def bind(host: str, port: int) -> socket.socket:
    """Listen now, so a taken port stops start-up with a clear error (uvicorn would log it
    and call sys.exit from inside the event loop)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(
            f"the dashboard cannot listen on {host}:{port} ({exc.strerror or exc}); stop what "
            "uses that port, or set AUTOREPLY_WEB_PORT / AUTOREPLY_WEB_HOST"
        ) from exc


async def serve(app: FastAPI, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve `app` on `sock` until `stop` is set; then finish the requests in flight."""
    config = uvicorn.Config(
        app,
        log_config=None,  # the process's logging set-up stays as it is
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = EmbeddedServer(config)
    # Move what start-up left (imports, settings, the model's Python objects) out of the
    # garbage collector's reach: otherwise every full collection scans ~300k objects, ~130 ms
    # added to whichever page request triggers it (benchmarks/web_pages_bench.py --gc-freeze).
    gc.collect()
    gc.freeze()
    host, port = sock.getsockname()[:2]
    log.info("dashboard on http://%s:%s/", f"[{host}]" if ":" in host else host, port)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        await serving  # its error, if it failed on its own, reaches the caller


def serving_in_service(settings: Settings, events: PrometheusEvents | None = None) -> WebServing:
    """The dashboard for `autoreply run --web`: bound now, served once the service runs.
    `events` is the observer handed to the Service too, so /metrics shows this process's
    generation latency and gate verdicts beside the database's figures."""
    sock = bind(settings.web_host, settings.web_port)

    async def run(running: Running, stop: asyncio.Event, ready: Readiness) -> None:
        from bot.web.app import create_app
        from bot.web.metrics import build_metrics

        metrics = build_metrics(running.db, events)
        app = create_app(settings, running.db, running.moderation, ready=ready, metrics=metrics)
        await serve(app, sock, stop)

    return run


def serve_standalone() -> None:
    """`autoreply web`: the dashboard alone, until SIGINT / SIGTERM."""
    from bot.cli import _config, moderation_over
    from bot.storage import migrate
    from bot.storage.db import Database

    settings, accounts = _config()
    migrate.ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    moderation = moderation_over(db, settings, accounts)
    sock = bind(settings.web_host, settings.web_port)

    async def main() -> None:
        from bot.web.app import create_app

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(create_app(settings, db, moderation), sock, stop)

    try:
        asyncio.run(main())
    finally:
        db.dispose()
