"""A real dashboard server for browser tests, and the browser itself.

The server is the production path (`bot.web.serve.serve`: uvicorn on a bound socket) run in a
thread with its own event loop; stopping it sets its stop event, as the service does.

Browser tests need Playwright and Debian's chromium (`playwright install` cannot download
browsers here). Without them the tests skip with a loud reason, unless
AUTOREPLY_REQUIRE_BROWSER=1 (set by .ci/run), where a missing browser fails the run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI

from bot.web.serve import bind, serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser

REQUIRE_BROWSER_ENV = "AUTOREPLY_REQUIRE_BROWSER"
CHROMIUM = "/usr/bin/chromium"


class LiveServer:
    def __init__(self, app: FastAPI) -> None:
        self._sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(app,), daemon=True)

    def _run(self, app: FastAPI) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._started.set()
            await serve(app, self._sock, self._stop)

        asyncio.run(main())

    def __enter__(self) -> LiveServer:
        self._thread.start()
        assert self._started.wait(30), "the server thread did not start"
        for _ in range(600):
            try:
                httpx.get(f"{self.url}/healthz", timeout=5).raise_for_status()
                return self
            except httpx.TransportError:
                threading.Event().wait(0.05)
        raise AssertionError("the dashboard did not answer in 30 s")

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the dashboard did not stop"


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = _missing_browser()
    if reason is not None:
        if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
            pytest.fail(f"{reason}; {REQUIRE_BROWSER_ENV}=1: browser tests must run", False)
        pytest.skip(f"!!! BROWSER TESTS SKIPPED !!! {reason}")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # two loaded cores: be patient, never assert timing
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()
