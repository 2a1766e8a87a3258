"""Dashboard auth over HTTP on both backends: login, logout, redirects, CSRF, rate limiting,
sessions that end when the user is removed or their password changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.domain import ActorRole
from bot.moderation import ModerationService
from bot.storage import models as m
from bot.storage import web_users
from bot.storage.db import Database
from bot.web.app import SESSION_COOKIE, create_app
from bot.web.auth import Operator
from bot.web.passwords import hash_password
from tests.fakes import AllowAll, queue_draft
from tests.web.conftest import PASSWORD, add_user, csrf_of, log_in, web_settings


def test_no_session_redirects_to_login_with_the_page_to_come_back_to(client: TestClient) -> None:
    answer = client.get("/queue?account=shop", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fqueue%3Faccount%3Dshop"
    # Scripts get a 401 they can act on instead of a login page.
    assert client.get("/queue/list", headers={"Accept": "application/json"}).status_code == 401


def test_login_lands_on_the_page_asked_for_and_logout_ends_the_session(
    client: TestClient, migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    token = csrf_of(client.get("/login?next=/queue%3Faccount%3Dshop").text)
    answer = client.post(
        "/login",
        data={"name": "alice", "password": PASSWORD, "csrf_token": token, "next": "/queue?x=1"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/queue?x=1"
    cookie = answer.headers["set-cookie"].lower()
    assert SESSION_COOKIE in cookie and "httponly" in cookie and "samesite=lax" in cookie
    page = client.get("/queue")
    assert page.status_code == 200 and "alice" in page.text
    out = client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_next_may_only_point_inside_the_site(client: TestClient, migrated_db: Database) -> None:
    add_user(migrated_db, "alice")
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"name": "alice", "password": PASSWORD, "csrf_token": token, "next": "//evil.test/"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/"


def test_wrong_password_and_unknown_name_get_the_same_answer(
    client: TestClient, migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"name": "alice", "password": "nope", "csrf_token": token})
    nobody = client.post("/login", data={"name": "bob", "password": "nope", "csrf_token": token})
    assert wrong.status_code == nobody.status_code == 401
    assert "Wrong name or password" in wrong.text and "Wrong name or password" in nobody.text


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    _, draft_id = queue_draft(migrated_db)
    token = log_in(client, "alice")
    missing = client.post(f"/queue/drafts/{draft_id}/approve", data={})
    wrong = client.post(f"/queue/drafts/{draft_id}/approve", data={"csrf_token": token + "x"})
    header = client.post(
        f"/queue/drafts/{draft_id}/approve",
        headers={"X-CSRF-Token": "forged", "Accept": "application/json"},
    )
    assert missing.status_code == wrong.status_code == header.status_code == 403
    assert "Reload the page" in missing.text
    with migrated_db.session() as s:
        assert s.scalar(select(m.ReplyDraft.status).where(m.ReplyDraft.id == draft_id)) == (
            m.DraftStatus.QUEUED
        )
        assert s.scalars(select(m.OutboxItem)).all() == []
    # The login form is protected too: a forged cross-site login is refused.
    forged = client.post("/login", data={"name": "alice", "password": PASSWORD})
    assert forged.status_code == 403


def test_too_many_wrong_passwords_lock_the_name_out_even_for_the_right_one(
    migrated_db: Database, tmp_path: Path
) -> None:
    add_user(migrated_db, "alice")
    settings = web_settings(migrated_db, tmp_path, web_login_max_failures=3)
    app = create_app(settings, migrated_db, ModerationService(migrated_db, gate=AllowAll))
    with TestClient(app) as client:
        token = csrf_of(client.get("/login").text)
        for _ in range(3):
            bad = client.post(
                "/login", data={"name": "alice", "password": "guess", "csrf_token": token}
            )
            assert bad.status_code == 401
        locked = client.post(
            "/login", data={"name": "Alice", "password": PASSWORD, "csrf_token": token}
        )
        assert locked.status_code == 429
        assert "Too many wrong passwords" in locked.text and "users passwd" in locked.text
        assert client.get("/queue", follow_redirects=False).status_code == 303
        # Another name from the same address is not locked out by alice's guesses.
        add_user(migrated_db, "bob")
        assert log_in(client, "bob")
    # The generated session key was kept for the next start.
    assert (tmp_path / "web-secret").read_text().strip()


def test_sessions_end_when_the_password_changes_or_the_user_is_removed(
    client: TestClient, new_client: Callable[[], TestClient], migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    add_user(migrated_db, "bob")
    log_in(client, "alice")
    other = new_client()
    log_in(other, "bob")
    with migrated_db.session() as s:
        web_users.set_password(s, "alice", hash_password("a brand new password"))
        web_users.remove(s, "bob")
    assert client.get("/queue", follow_redirects=False).status_code == 303
    assert other.get("/queue", follow_redirects=False).status_code == 303
    assert log_in(client, "alice", "a brand new password")


def test_operator_pages_refuse_moderators(client: TestClient, migrated_db: Database) -> None:
    """`Operator` guards a route on its own, whatever the nav shows."""
    router = APIRouter()

    @router.get("/ops-only")
    def ops_only(user: Operator) -> dict[str, str]:
        return {"hello": user.name}

    client.app.include_router(router)  # type: ignore[attr-defined]
    add_user(migrated_db, "mod")
    add_user(migrated_db, "boss", ActorRole.OPERATOR)
    log_in(client, "mod")
    assert client.get("/ops-only").status_code == 403
    log_in(client, "boss")
    assert client.get("/ops-only").json() == {"hello": "boss"}
