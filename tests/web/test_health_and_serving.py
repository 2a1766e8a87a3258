"""/healthz, /readyz and /metrics; and `run --web`: the dashboard served in the service's event
loop, ready once the channels serve, and ended by the service's one stop event."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.domain import Incoming
from bot.errors import ConfigError
from bot.moderation import ModerationService
from bot.service import Service
from bot.storage.db import Database
from bot.web.app import create_app
from bot.web.metrics import PrometheusEvents
from bot.web.serve import bind, serving_in_service
from tests.fakes import AllowAll, CannedDrafter, RecordingChannel, account
from tests.web.conftest import SECRET, web_settings


def test_healthz_readyz_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "autoreply_database_up 1.0" in metrics.text


def test_readyz_says_why_it_is_not_ready(migrated_db: Database, tmp_path: Path) -> None:
    moderation = ModerationService(migrated_db, gate=AllowAll)
    settings = web_settings(migrated_db, tmp_path)
    waiting = create_app(settings, migrated_db, moderation, ready=lambda: "loading the model")
    with TestClient(waiting) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503 and answer.json()["reason"] == "loading the model"
        assert client.get("/healthz").status_code == 200  # alive all the same
    gone = Database(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    with TestClient(create_app(settings, gone, moderation, secret=SECRET)) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503 and "database unreachable" in answer.json()["reason"]
    gone.dispose()


def test_a_taken_port_is_a_clear_config_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*AUTOREPLY_WEB_PORT"):
            bind("127.0.0.1", port)


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
    return port


def test_run_web_serves_beside_the_channels_and_stops_with_the_service(
    sqlite_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    settings = Settings(
        database_url=sqlite_url,
        adapters_dir=tmp_path / "adapters",
        web_port=port,
        web_secret_file=tmp_path / "secret",
    )
    channel = RecordingChannel(account="acct")
    events = PrometheusEvents()
    service = Service(
        settings,
        [account("acct")],
        [channel],
        drafter=CannedDrafter(),
        events=events,
        web=serving_in_service(settings, events),
    )
    base = f"http://127.0.0.1:{port}"

    async def scenario() -> tuple[int, dict[str, str], str]:
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            try:
                ready: dict[str, str] = {}
                for _ in range(1200):
                    try:
                        answer = await client.get("/readyz")
                    except httpx.TransportError:
                        answer = None  # not listening yet
                    if answer is not None and answer.status_code == 200:
                        ready = answer.json()
                        break
                    await asyncio.sleep(0.025)
                assert service.running is not None
                await service.running.core.handle(_hello())
                await asyncio.wait_for(service.running.outbox.idle(), 30)
                metrics = (await client.get("/metrics")).text
                login = (await client.get("/queue", follow_redirects=False)).status_code
            finally:
                stop.set()  # the one shutdown path: channels and dashboard alike
                await asyncio.wait_for(running, 60)
        return login, ready, metrics

    login, ready, metrics = asyncio.run(scenario())
    assert ready == {"status": "ready"}
    assert login == 303
    assert 'autoreply_generation_seconds_count{account="acct"} 1.0' in metrics
    assert channel.sent, "the channel served beside the dashboard"
    with pytest.raises(httpx.TransportError):  # the port is closed: the server ended too
        httpx.get(f"{base}/healthz", timeout=2)


def test_run_web_process_ends_both_on_sigterm(sqlite_url: str, tmp_path: Path) -> None:
    """The real `autoreply run --web`: SIGTERM reaches the service's handler (uvicorn installs
    none of its own), and the channels and the dashboard stop together, exit status 0."""
    port = _free_port()
    environ = {
        **os.environ,
        "AUTOREPLY_DATABASE_URL": sqlite_url,
        "AUTOREPLY_MODE": "off",  # no model to load: this is about serving and stopping
        "AUTOREPLY_WEB_PORT": str(port),
        "AUTOREPLY_WEB_SECRET_FILE": str(tmp_path / "secret"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--web"],
        env=environ,
        stdin=subprocess.PIPE,  # the console channel's input stays open until the signal
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline, "run --web was not ready in 120 s"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    assert "Shutting down" in output  # uvicorn drained, on the service's stop event


def _hello() -> Incoming:
    return Incoming(
        platform="console",
        account="acct",
        chat_id="c1",
        message_id="1",
        user_id="u1",
        text="hello there",
    )
