"""The dashboard's security review, kept as tests: every route's guards, hostile input (NUL
characters, non-ASCII tokens, redirect targets browsers rewrite), the session key file,
login links raced and sent only to a person's id, and the login lock-out's name variants."""

from __future__ import annotations

import re
import stat
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
from argon2 import PasswordHasher
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.domain import ActorRole, ChatKind, Incoming, utcnow
from bot.errors import ConfigError, InputError
from bot.moderation import ModerationService
from bot.storage import accounts as account_store
from bot.storage import history, web_users
from bot.storage import models as m
from bot.storage.db import Database
from bot.web import auth, health, passwords
from bot.web.app import PAGES, create_app
from bot.web.login_links import send_link
from bot.web.passwords import hash_password
from bot.web.secret import session_secret
from tests.fakes import AllowAll, queue_draft
from tests.web.conftest import PASSWORD, add_user, csrf_of, log_in, web_settings
from tests.web.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# Routes anyone may reach: logging in, the link's button page, and the probes.
PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/login/link/{token}"),
    ("POST", "/login/link"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}


def _guards(route: APIRoute) -> set[str]:
    names: set[str] = set()
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is not None:
            names.add(getattr(dependency.call, "__name__", ""))
        pending.extend(dependency.dependencies)
    return names


def _routes(router: APIRouter) -> list[tuple[str, APIRoute]]:
    return [
        (method, route)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods or ())
    ]


def test_every_page_route_needs_a_login_and_every_post_the_csrf_token() -> None:
    """The route table itself: a new route without its guard fails here, not in production."""
    public = {
        (method, route.path) for r in (auth.router, health.router) for method, route in _routes(r)
    }
    assert public == PUBLIC
    for router in (auth.router, health.router):
        for method, route in _routes(router):
            if method == "POST":
                assert "check_csrf" in _guards(route), route.path
    seen = 0
    for page in PAGES:
        for method, route in _routes(page.router):
            seen += 1
            guards = _guards(route)
            assert "require_user" in guards, f"{method} {route.path} needs CurrentUser"
            if page.operator_only:
                assert "require_operator" in guards, f"{method} {route.path} needs Operator"
            if method == "POST":
                assert "check_csrf" in guards, f"{method} {route.path} needs CsrfChecked"
            assert method in {"GET", "POST"}, f"{method} {route.path}"
    assert seen >= 20


def test_a_csrf_token_with_non_ascii_characters_is_refused_not_a_crash(
    client: TestClient, migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    log_in(client, "alice")
    form = client.post("/logout", data={"csrf_token": "é"}, follow_redirects=False)
    header = client.post(
        "/logout",
        # Bytes: a header value arrives as latin-1, so a browser can send a non-ASCII one.
        headers=[(b"X-CSRF-Token", "\xe9".encode("latin-1")), (b"Accept", b"application/json")],
    )
    assert form.status_code == header.status_code == 403
    assert header.json()["ok"] is False and "Reload the page" in header.json()["message"]
    assert client.get("/queue", follow_redirects=False).status_code == 200  # still logged in


def test_a_nul_character_is_a_400_that_says_what_to_fix(
    client: TestClient, migrated_db: Database
) -> None:
    """PostgreSQL text cannot hold NUL: without the check each of these was a 500 there."""
    add_user(migrated_db, "alice")
    _, draft_id = queue_draft(migrated_db)
    token = csrf_of(client.get("/login").text)
    login = client.post(
        "/login", data={"name": "alice\x00", "password": PASSWORD, "csrf_token": token}
    )
    assert login.status_code == 400 and "NUL character" in login.text
    token = log_in(client, "alice")
    for url in ("/conversations?q=a%00b", "/conversations?user=%00", "/queue?account=%00"):
        answer = client.get(url)
        assert answer.status_code == 400 and "Remove it" in answer.text, url
    edit = client.post(
        f"/queue/drafts/{draft_id}/edit",
        data={"text": "fine\x00", "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert edit.status_code == 400 and "NUL character" in edit.json()["message"]
    with migrated_db.session() as s:
        assert s.scalar(select(m.ReplyDraft.status).where(m.ReplyDraft.id == draft_id)) == (
            m.DraftStatus.QUEUED
        )


def test_a_malformed_request_gets_the_error_page_not_a_json_dump(
    client: TestClient, migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    log_in(client, "alice")
    page = client.get("/queue/drafts/abc")
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert "draft_id (in the path)" in page.text and "try again" in page.text
    assert '"loc"' not in page.text
    script = client.get("/conversations?before=x", headers={"Accept": "application/json"})
    assert script.status_code == 400
    assert script.json()["ok"] is False and "before (in the query)" in script.json()["message"]


@pytest.mark.parametrize(
    "target", ["/\t/evil.test", "/\n/evil.test", "/\\evil.test", "/x\\..\\\\evil.test"]
)
def test_next_that_a_browser_would_read_as_another_site_goes_home(
    client: TestClient, migrated_db: Database, target: str
) -> None:
    add_user(migrated_db, "alice")
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"name": "alice", "password": PASSWORD, "csrf_token": token, "next": target},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_the_lock_out_counts_case_and_whitespace_variants_of_one_name(
    migrated_db: Database, tmp_path: Path
) -> None:
    add_user(migrated_db, "alice")
    settings = web_settings(migrated_db, tmp_path, web_login_max_failures=3)
    app = create_app(settings, migrated_db, ModerationService(migrated_db, gate=AllowAll))
    with TestClient(app) as client:
        token = csrf_of(client.get("/login").text)
        for variant in ("ALICE", " alice\t", "Alice\u00a0"):
            bad = client.post(
                "/login", data={"name": variant, "password": "guess", "csrf_token": token}
            )
            assert bad.status_code == 401
        right = client.post(
            "/login", data={"name": "alice", "password": PASSWORD, "csrf_token": token}
        )
        assert right.status_code == 429


def test_two_simultaneous_uses_of_a_login_link_log_in_once(migrated_db: Database) -> None:
    """The conditional UPDATE decides: two requests racing with one token, one wins."""
    user_id = add_user(migrated_db, "alice")
    with migrated_db.session() as s:
        web_users.add_link(s, user_id, "race-token", utcnow() + timedelta(minutes=5))
    start = threading.Barrier(2, timeout=60)
    results: list[web_users.WebUserRow | None] = []

    def use() -> None:
        start.wait()
        with migrated_db.session() as s:
            results.append(web_users.use_link(s, "race-token"))

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 2
    assert sorted(row is not None for row in results) == [False, True]
    assert [row.name for row in results if row is not None] == ["alice"]


@pytest.mark.parametrize("telegram_id", ["１２３", "٤٢"])
def test_a_link_goes_only_to_an_ascii_numeric_person_id(
    migrated_db: Database, telegram_id: str
) -> None:
    with migrated_db.session() as s:
        web_users.add(
            s,
            "alice",
            hash_password(PASSWORD),
            ActorRole.MODERATOR,
            None,
            platform="telegram",
            platform_user_id=telegram_id,
        )
        account_store.ensure(s, "telegram", "shop")
    with pytest.raises(InputError, match="not a person's Telegram id"), migrated_db.session() as s:
        send_link(s, "alice", "shop", "http://x", timedelta(minutes=5))
    with migrated_db.session() as s:
        assert s.scalars(select(m.WebLoginLink)).all() == []
        assert s.scalars(select(m.Conversation)).all() == []


def test_the_session_key_file_is_private_kept_and_never_short(tmp_path: Path) -> None:
    settings = Settings(web_secret_file=tmp_path / "keys" / "web-secret")
    key = session_secret(settings)
    assert len(key) >= 32 and session_secret(settings) == key
    path = settings.web_secret_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["web-secret"]  # no temporary left
    path.write_text("\n")  # cut off, say by a full disk: it must not sign sessions
    with pytest.raises(ConfigError, match="delete it"):
        session_secret(settings)


def test_every_answer_carries_the_security_headers(
    client: TestClient, migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    log_in(client, "alice")
    for url in ("/login", "/queue", "/static/app.js", "/nope", "/healthz"):
        headers = client.get(url).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, url
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == (
            "nosniff"
        )
        assert headers["referrer-policy"] == "same-origin"


def test_no_template_has_inline_script_the_policy_would_block() -> None:
    templates = Path(__file__).parents[2] / "bot" / "web" / "templates"
    inline = re.compile(r"<script(?![^>]*\bsrc=)|\son[a-z]+=|javascript:", re.IGNORECASE)
    offenders = [
        f"{path.relative_to(templates)}: {match.group(0)!r}"
        for path in sorted(templates.rglob("*.html"))
        for match in inline.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_in_chromium_the_pages_break_no_policy_rule_and_the_account_picker_works(
    browser: Browser, app: FastAPI, migrated_db: Database
) -> None:
    """The policy forbids inline script: the pages must work (and log no violation) under it."""
    from playwright.sync_api import expect

    add_user(migrated_db, "boss", ActorRole.OPERATOR)
    queue_draft(migrated_db, account="desk")
    queue_draft(migrated_db, account="shop")
    with LiveServer(app) as server:
        page = browser.new_context().new_page()
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text))
        page.goto(f"{server.url}/analytics")
        page.fill("input[name=name]", "boss")
        page.fill("input[name=password]", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url("**/analytics")
        expect(page.locator("figure.plot svg")).to_have_count(5)
        page.select_option("select[name=account]", "shop")
        page.wait_for_url("**/analytics?account=shop*")
        expect(page.locator("select[name=account]")).to_have_value("shop")
        for path in ("/queue", "/conversations", "/adapters"):
            page.goto(f"{server.url}{path}")
            expect(page.locator("main")).to_be_visible()
        page.context.close()
    assert [text for text in refused if "Content Security Policy" in text] == []


def test_hostile_text_names_and_titles_are_shown_as_text(
    client: TestClient, migrated_db: Database
) -> None:
    """What senders write (text, display name, group title) is escaped on every page."""
    evil = '<img src=x onerror="alert(1)">'
    with migrated_db.session() as s:
        stored = history.ingest(
            s,
            Incoming(
                platform="console",
                account="shop",
                chat_id="-77",
                message_id="evil-1",
                user_id="66",
                text=f"hi {evil}",
                user_name=f"Eve {evil}",
                chat_kind=ChatKind.GROUP,
                chat_title=f"Group {evil}",
            ),
        )
    _, draft_id = queue_draft(migrated_db, reply=f"re {evil}", message_id=stored.message_id)
    add_user(migrated_db, "alice")
    log_in(client, "alice")
    with migrated_db.session() as s:
        conversation_id = s.scalar(select(m.Conversation.id).where(m.Conversation.chat_id == "-77"))
    for url in (
        f"/queue?d={draft_id}",
        f"/queue/drafts/{draft_id}",
        "/conversations?q=hi",
        f"/conversations/{conversation_id}",
    ):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "<img" not in page.text and "&lt;img src=x" in page.text, url


def test_an_unknown_name_costs_one_argon2_verify_like_a_wrong_password(
    client: TestClient, migrated_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same work either way, so the answer's timing does not tell which names exist."""
    add_user(migrated_db, "alice")
    checked: list[str | bytes] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            checked.append(hash)
            return super().verify(hash, password)

    monkeypatch.setattr(passwords, "_HASHER", Counting())
    token = csrf_of(client.get("/login").text)
    for name in ("alice", "nobody"):
        answer = client.post("/login", data={"name": name, "password": "nope", "csrf_token": token})
        assert answer.status_code == 401
    assert len(checked) == 2 and all(str(h).startswith("$argon2id$") for h in checked)
    assert checked[1] == passwords._DUMMY_HASH
