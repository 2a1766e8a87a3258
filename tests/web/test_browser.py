"""The dashboard in real headless Chromium, on both backends: a keyboard-only moderation round
trip, and two moderators racing for one draft (exactly one wins, the other is told why).

Screenshots go to the test's tmp_path only; benchmarks/web_screenshots.py refreshes docs/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import queue_draft
from tests.web.conftest import PASSWORD, add_user
from tests.web.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page
try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips these tests (fails under REQUIRE_BROWSER)
    expect = None  # type: ignore[assignment]


@pytest.fixture
def server(app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


Rows = tuple[list[str], list[tuple[int | None, str]], list[tuple[str, str, str]]]


def _rows(db: Database) -> Rows:
    with db.session() as s:
        statuses = [
            status.value
            for status in s.scalars(select(m.ReplyDraft.status).order_by(m.ReplyDraft.id))
        ]
        outbox = [
            (d, t)
            for d, t in s.execute(
                select(m.OutboxItem.draft_id, m.OutboxItem.text).order_by(m.OutboxItem.id)
            )
        ]
        audit = [
            (kind, who, action.value)
            for kind, who, action in s.execute(
                select(
                    m.ModerationAction.actor_kind,
                    m.ModerationAction.moderator,
                    m.ModerationAction.action,
                ).order_by(m.ModerationAction.id)
            )
        ]
    return statuses, outbox, audit


def _selected(page: Page, draft_id: int) -> None:
    expect(page.locator("#detail article")).to_have_attribute("data-draft-id", str(draft_id))
    expect(page.locator(f'.q-item[data-id="{draft_id}"]')).to_have_class("q-item selected")


def _log_in_with_keys(page: Page, name: str) -> None:
    page.keyboard.type(name)  # the name field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/queue")


def test_a_keyboard_only_round_trip(
    browser: Browser, server: LiveServer, migrated_db: Database, tmp_path: Path
) -> None:
    add_user(migrated_db, "alice")
    drafts = [queue_draft(migrated_db, f"question {n}", f"answer {n}")[1] for n in range(3)]
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/queue")
    expect(page).to_have_url(f"{server.url}/login?next=%2Fqueue")
    page.screenshot(path=tmp_path / "login.png")
    _log_in_with_keys(page, "alice")
    _selected(page, drafts[0])
    page.keyboard.press("j")
    _selected(page, drafts[1])
    page.keyboard.press("k")
    _selected(page, drafts[0])
    page.screenshot(path=tmp_path / "queue.png", full_page=True)

    page.keyboard.press("a")
    expect(page.locator("#notice")).to_contain_text(f"Draft #{drafts[0]} approved")
    _selected(page, drafts[1])  # the next draft comes up by itself

    page.keyboard.press("e")
    editor = page.locator('#detail form[data-action="edit"] textarea')
    expect(editor).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("a better answer, typed")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#notice")).to_contain_text(f"Draft #{drafts[1]} edited")
    _selected(page, drafts[2])

    page.keyboard.press("r")
    expect(page.locator("#notice")).to_contain_text(f"Draft #{drafts[2]} rejected")
    expect(page.locator("#queue-list")).to_contain_text("The queue is empty.")
    context.close()

    statuses, outbox, audit = _rows(migrated_db)
    assert statuses == ["approved", "edited", "rejected"]
    assert outbox == [(drafts[0], "answer 0"), (drafts[1], "a better answer, typed")]
    assert audit == [
        ("web", "web:alice", "approve"),
        ("web", "web:alice", "edit"),
        ("web", "web:alice", "reject"),
    ]


def test_two_moderators_on_one_draft_exactly_one_wins(
    browser: Browser, server: LiveServer, migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    add_user(migrated_db, "bob")
    _, contested = queue_draft(migrated_db, "who gets this?", "me")
    _, other = queue_draft(migrated_db, "and this one?", "later")
    pages: dict[str, Page] = {}
    for name in ("alice", "bob"):
        page = browser.new_context().new_page()
        page.goto(f"{server.url}/queue")
        _log_in_with_keys(page, name)
        _selected(page, contested)
        pages[name] = page

    pages["alice"].keyboard.press("a")
    expect(pages["alice"].locator("#notice")).to_contain_text(f"Draft #{contested} approved")
    # Bob's page learns of it by itself (polling) ...
    expect(pages["bob"].locator(f'.q-item[data-id="{contested}"]')).to_have_count(0)
    expect(pages["bob"].locator("#detail .stale")).to_be_visible()
    # ... and his late keypress is refused with a clear note; nothing is sent twice.
    pages["bob"].keyboard.press("a")
    expect(pages["bob"].locator("#notice")).to_contain_text(
        f"Draft #{contested} was already approved by someone else"
    )
    for page in pages.values():
        page.context.close()

    statuses, outbox, audit = _rows(migrated_db)
    assert statuses == ["approved", "queued"]
    assert outbox == [(contested, "me")]
    assert audit == [("web", "web:alice", "approve")]
    assert other  # untouched, still queued
