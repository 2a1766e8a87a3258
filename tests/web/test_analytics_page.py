"""The Analytics page over HTTP on both backends: five inline SVG plots and the topics of a run
fitted by the real topics job, account scoping (another account is a 404), login, the days of
the account's time zone, the one-minute cache of the figures, and the page in real Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.account_tables import AccountTable
from bot.analytics.topics_job import TopicsJob
from bot.domain import (
    ActorRole,
    DecisionAction,
    ModerationKind,
    Sentiment,
    VerdictAction,
    utcnow,
)
from bot.moderation import ModerationService
from bot.storage import models as m
from bot.storage.db import Database
from bot.web.analytics_view import AnalyticsCache
from bot.web.app import create_app
from tests.analytics.seed import Seeder
from tests.analytics.test_topic_model import labelled
from tests.fakes import AllowAll
from tests.web.conftest import PASSWORD, SECRET, add_user, log_in, web_settings
from tests.web.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser
try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips these tests (fails under REQUIRE_BROWSER)
    expect = None  # type: ignore[assignment]

SVG = re.compile(r"<svg\b")
MESSAGES = re.compile(r'data-figure="messages">([\d,]+)<')


def _seed(db: Database, account: str = "shop", messages: int = 60) -> None:
    """`messages` inbound messages of the last two days (the labelled topic texts), every
    other one replied to, every fourth through a draft a moderator approved."""
    now = utcnow()
    _, texts = labelled()
    with db.session() as s:
        seeder = Seeder(s, account)
        for i in range(messages):
            when = now - timedelta(hours=1 + i % 40, minutes=i)
            sent = seeder.inbound(
                when,
                texts[i % len(texts)].text,
                user=f"u{i % 7}",
                intent=("order_status", "refund", "greeting")[i % 3],
                sentiment=(Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE)[i % 3],
                decision=(DecisionAction.AUTO, DecisionAction.REVIEW)[i % 2],
            )
            if i % 2 == 0:
                seeder.reply(sent, when + timedelta(seconds=30 + i))
            if i % 4 == 1:
                draft = seeder.draft(sent, when)
                seeder.action("alice", ModerationKind.APPROVE, when + timedelta(minutes=5), draft)


def _fit(db: Database, account: str = "shop") -> None:
    TopicsJob(db, [account], window_days=7).fit(account)


def _operator(client: TestClient, db: Database) -> None:
    add_user(db, "root", ActorRole.OPERATOR)
    log_in(client, "root")


def _messages_shown(html: str) -> int:
    match = MESSAGES.search(html)
    assert match, "the page shows no message count"
    return int(match.group(1).replace(",", ""))


def test_plots_figures_and_fitted_topics(client: TestClient, migrated_db: Database) -> None:
    _seed(migrated_db)
    _fit(migrated_db)
    _operator(client, migrated_db)

    page = client.get("/analytics?account=shop&days=7")

    assert page.status_code == 200
    html = page.text
    assert len(SVG.findall(html)) == 5
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "five inlined plots must not repeat an id"
    for title in ("Intent of incoming messages", "Sentiment", "Decisions", "Reply latency"):
        assert title in html
    assert "Queue wait" in html and "Moderator workload" in html
    assert _messages_shown(html) == 60
    assert 'data-figure="replies">30<' in html
    assert 'data-figure="moderated">15<' in html
    assert "updated every minute" in html
    # Topics: the labelled set's themes, their sizes, trend ("new": no earlier messages) and
    # example messages resolved to their texts.
    assert html.count('<tr class="topic">') == 4
    assert "wifi" in html and "refund" in html
    assert html.count('class="trend-new"') == 4
    _, texts = labelled()
    shown = re.findall(r"<q>([^<]+)</q>", html)
    assert 4 <= len(shown) <= 12
    known = {" ".join(t.text.split()) for t in texts}
    assert all(text.replace("&#39;", "'") in known for text in shown)
    assert "Fitted " in html and "just now" in html


def test_never_fitted_says_how_to_fit(client: TestClient, migrated_db: Database) -> None:
    _seed(migrated_db, messages=12)
    _operator(client, migrated_db)

    html = client.get("/analytics").text  # the first account and 30 days by default

    assert len(SVG.findall(html)) == 5
    assert "have not been fitted" in html
    assert "<code>autoreply analytics topics</code> fits them now" in html
    assert 'aria-current="true">30 days' in html


def test_a_moderator_sees_only_their_accounts(client: TestClient, migrated_db: Database) -> None:
    _seed(migrated_db, "shop", messages=12)
    _seed(migrated_db, "bank", messages=12)
    add_user(migrated_db, "alice", accounts=frozenset({"shop"}))
    log_in(client, "alice")

    own = client.get("/analytics")
    assert own.status_code == 200
    assert '<option value="shop" selected>' in own.text
    assert "bank" not in own.text
    for other in ("bank", "nowhere"):
        refused = client.get(f"/analytics?account={other}")
        assert refused.status_code == 404
        assert "pick one from the list" in refused.text
    for days in ("12", "many"):
        wrong = client.get(f"/analytics?account=shop&days={days}")
        assert wrong.status_code == 400
        assert "pick one of the ranges" in wrong.text


def test_no_session_goes_to_login(client: TestClient) -> None:
    answer = client.get("/analytics?account=shop", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


def test_days_follow_the_accounts_business_hours_zone(
    migrated_db: Database, tmp_path: Path
) -> None:
    zone = "Pacific/Kiritimati"  # UTC+14: its today is often not UTC's
    table = AccountTable.model_validate(
        {"name": "shop", "platform": "console", "policy": {"business_hours": {"time_zone": zone}}}
    )
    settings = web_settings(migrated_db, tmp_path, accounts=(table,))
    app = create_app(
        settings, migrated_db, ModerationService(migrated_db, gate=AllowAll), secret=SECRET
    )
    _seed(migrated_db, messages=12)
    with TestClient(app) as client:
        _operator(client, migrated_db)
        before = datetime.now(ZoneInfo(zone)).date()
        html = client.get("/analytics?days=7").text
        after = datetime.now(ZoneInfo(zone)).date()
    assert f"days in {zone}" in html
    assert any(
        f"{(day - timedelta(days=6)).isoformat()} to {day.isoformat()}" in html
        for day in (before, after)
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_figures_are_cached_for_a_minute(
    app: FastAPI, client: TestClient, migrated_db: Database
) -> None:
    clock = Clock()
    cache = AnalyticsCache(ttl_s=60, clock=clock)
    app.state.analytics_cache = cache
    _seed(migrated_db, messages=12)
    _operator(client, migrated_db)

    assert _messages_shown(client.get("/analytics?days=7").text) == 12
    _add_to_shop(migrated_db, 3)

    clock.now += 59
    assert _messages_shown(client.get("/analytics?days=7").text) == 12  # the cached figures
    assert cache.builds == 1
    assert _messages_shown(client.get("/analytics?days=30").text) == 15  # another range
    assert cache.builds == 2

    clock.now += 2  # the first entry expired
    assert _messages_shown(client.get("/analytics?days=7").text) == 15
    assert cache.builds == 3


def _add_to_shop(db: Database, n: int) -> None:
    """`n` more analysed inbound messages of the last minutes for the account "shop"."""
    with db.session() as s:
        account = s.scalars(select(m.Account).where(m.Account.name == "shop")).one()
        chat = s.scalars(select(m.Conversation).where(m.Conversation.account_id == account.id))
        chat_id = chat.first().id  # type: ignore[union-attr]
        for i in range(n):
            when = utcnow() - timedelta(minutes=i + 1)
            row = m.Message(
                account_id=account.id,
                conversation_id=chat_id,
                direction=m.Direction.INBOUND,
                platform_message_id=f"late{i}",
                text="one more question",
                decision=DecisionAction.AUTO,
                handled_at=when,
                sent_at=when,
                created_at=when,
            )
            s.add(row)
            s.flush()
            s.add(
                m.Analysis(
                    message_id=row.id,
                    intent="greeting",
                    intent_score=0.9,
                    sentiment=Sentiment.NEUTRAL,
                    sentiment_score=0.9,
                    input_verdict=VerdictAction.ALLOW,
                    model_version="test",
                )
            )


@pytest.fixture
def server(app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


def test_the_page_in_chromium(
    browser: Browser, server: LiveServer, migrated_db: Database, tmp_path: Path
) -> None:
    _seed(migrated_db)
    _fit(migrated_db)
    add_user(migrated_db, "alice", accounts=frozenset({"shop"}))
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{server.url}/analytics")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/analytics")  # back where the login began
    page.goto(f"{server.url}/analytics?days=7")

    plots = page.locator("figure.plot svg")
    expect(plots).to_have_count(5)
    for i in range(5):
        expect(plots.nth(i)).to_be_visible()
        box = plots.nth(i).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
    expect(page.locator("tr.topic")).to_have_count(4)
    page.click("text=30 days")
    expect(page.locator(".ranges a.active")).to_have_text("30 days")
    page.screenshot(path=tmp_path / "analytics.png", full_page=True)
    assert (tmp_path / "analytics.png").stat().st_size > 10_000
    page.context.close()
