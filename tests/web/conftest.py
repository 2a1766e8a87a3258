"""Dashboard fixtures: an app over a migrated database, users, logged-in clients."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.domain import ActorRole
from bot.moderation import ModerationService
from bot.storage import web_users
from bot.storage.db import Database
from bot.web.app import create_app
from bot.web.passwords import hash_password
from tests.fakes import AllowAll
from tests.web.live import browser  # noqa: F401  (the fixture, for the browser tests)

PASSWORD = "correct horse battery"
SECRET = "test-session-key-" + "x" * 40
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def web_settings(db: Database, tmp_path: Path, **overrides: object) -> Settings:
    settings = Settings(database_url=db.url, web_secret_file=tmp_path / "web-secret")
    return settings.model_copy(update=overrides)


def add_user(
    db: Database,
    name: str,
    role: ActorRole = ActorRole.MODERATOR,
    accounts: frozenset[str] | None = None,
    password: str = PASSWORD,
) -> int:
    with db.session() as s:
        return web_users.add(s, name, hash_password(password), role, accounts).id


def csrf_of(html: str) -> str:
    match = CSRF_META.search(html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


def log_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Log in through the real form; returns the session's CSRF token."""
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": token, "next": "/queue"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/queue").text)


@pytest.fixture
def app(migrated_db: Database, tmp_path: Path) -> FastAPI:
    moderation = ModerationService(migrated_db, gate=AllowAll)
    return create_app(web_settings(migrated_db, tmp_path), migrated_db, moderation, secret=SECRET)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def new_client(app: FastAPI) -> Iterator[Callable[[], TestClient]]:
    """Further clients on the same app: other browsers, other moderators."""
    made: list[TestClient] = []

    def make() -> TestClient:
        made.append(TestClient(app))
        return made[-1]

    yield make
    for test_client in made:
        test_client.close()
