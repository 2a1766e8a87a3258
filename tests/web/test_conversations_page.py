"""The Conversations page over HTTP on both backends: messages taken in by the real pipeline
(lexical classifier, real safety gate, outbox sending to a recording channel), each search
filter, paging, the full thread with its analysis and drafts, account scoping, and the chat
actions (hand off/back, ban/unban) audited as the web user."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.domain import ActorRole, ChatKind, Incoming, Mode
from bot.outbox import Outbox
from bot.pipeline import Pipeline
from bot.service import build_analysis
from bot.storage import history
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import OPERATOR, AllowAll, CannedDrafter, RecordingChannel, account
from tests.web.conftest import PASSWORD, add_user, log_in
from tests.web.live import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ROW = re.compile(r'data-message-id="(\d+)"')
REPLY = "Thanks for reaching out, we are looking into it."
OLD = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _msg(acct: str, n: int, text: str, chat: str, user: str, name: str, **kw: object) -> Incoming:
    return Incoming(
        platform="console",
        account=acct,
        chat_id=chat,
        message_id=f"{acct}-{n}",
        user_id=user,
        user_name=name,
        text=text,
        **kw,  # type: ignore[arg-type]
    )


def _seed(db: Database) -> None:
    """Two accounts through the real pipeline: shop answers by itself (its replies are sent
    and stored as outbound messages), help queues every draft for a person."""
    from bot.moderation import ModerationService

    accounts = {
        "shop": account("shop", mode=Mode.AUTO),
        "help": account("help", mode=Mode.REVIEW_ALL),
    }
    classifier, gate = build_analysis(Settings(database_url=db.url))
    outbox = Outbox(db, {name: RecordingChannel(account=name) for name in accounts})
    pipeline = Pipeline(
        db=db,
        classifier=classifier,
        gate=gate,
        drafter=CannedDrafter(),
        outbox=outbox,
        accounts=accounts,
        history_turns=6,
    )
    moderation = ModerationService(db, gate=AllowAll)

    async def go() -> None:
        await pipeline.handle(_msg("shop", 1, "Where is my order #1234?", "c1", "u1", "Dana"))
        await outbox.idle()  # the reply goes out before Dana writes again
        await pipeline.handle(
            _msg("shop", 2, "Thank you so much, great service!", "c1", "u1", "Dana")
        )
        await pipeline.handle(
            _msg(
                "shop",
                3,
                "This is terrible, the parcel arrived broken and I am angry",
                "g2",
                "u2",
                "Erik",
                chat_kind=ChatKind.GROUP,
                chat_title="Lamp owners",
            )
        )
        await pipeline.handle(
            _msg("shop", 4, "Do you ship lamps abroad?", "c3", "u3", "Fay", sent_at=OLD)
        )
        await pipeline.handle(
            _msg("help", 1, "hi, can you help me with my order?", "c9", "u9", "Gus")
        )
        # A banned user's message is stored as metadata only.
        with db.session() as s:
            history.ingest(s, _msg("shop", 90, "first words", "c4", "u4", "Hal"))
        moderation.ban(OPERATOR, "shop", "u4", reason="spam")
        await pipeline.handle(_msg("shop", 91, "my secret words", "c4", "u4", "Hal"))
        await outbox.idle()
        await outbox.close()

    # In its own thread: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


def _id(db: Database, text: str) -> int:
    with db.session() as s:
        found = s.scalar(select(m.Message.id).where(m.Message.text == text))
    assert found is not None, text
    return found


def _conversation(db: Database, account_name: str, chat_id: str) -> int:
    with db.session() as s:
        found = s.scalar(
            select(m.Conversation.id)
            .join(m.Account, m.Account.id == m.Conversation.account_id)
            .where(m.Account.name == account_name, m.Conversation.chat_id == chat_id)
        )
    assert found is not None
    return found


def _hits(client: TestClient, **params: str) -> list[int]:
    answer = client.get("/conversations", params=params)
    assert answer.status_code == 200, answer.text
    return [int(n) for n in ROW.findall(answer.text)]


def _audit(db: Database) -> list[tuple[str, str, str | None, str]]:
    with db.session() as s:
        rows = s.execute(
            select(
                m.ModerationAction.actor_kind,
                m.ModerationAction.action,
                m.ModerationAction.target,
                m.ModerationAction.moderator,
            )
            .where(m.ModerationAction.actor_kind == "web")
            .order_by(m.ModerationAction.id)
        ).all()
    return [(kind, action.value, target, who) for kind, action, target, who in rows]


def test_each_filter_narrows_the_search(client: TestClient, migrated_db: Database) -> None:
    _seed(migrated_db)
    add_user(migrated_db, "olga", ActorRole.OPERATOR)
    log_in(client, "olga")
    order = _id(migrated_db, "Where is my order #1234?")
    thanks = _id(migrated_db, "Thank you so much, great service!")
    angry = _id(migrated_db, "This is terrible, the parcel arrived broken and I am angry")
    abroad = _id(migrated_db, "Do you ship lamps abroad?")
    helpme = _id(migrated_db, "hi, can you help me with my order?")

    everything = _hits(client)
    assert everything == sorted(everything, reverse=True)  # newest first
    assert {order, thanks, angry, abroad, helpme} <= set(everything)
    replies = [n for n in everything if n > order and n not in (thanks, angry, abroad, helpme)]
    assert replies, "the auto-sent replies are stored and found too"

    assert helpme not in _hits(client, account="shop") and order in _hits(client, account="shop")
    assert _hits(client, account="help") == [helpme]
    assert _hits(client, q="ORDER") == [helpme, order]  # case-insensitive, either account
    assert _hits(client, q="50%") == []  # LIKE wildcards are taken literally
    assert _hits(client, user="u1") == [thanks, order]  # platform user id
    assert _hits(client, user="eri") == [angry]  # part of a display name
    assert _hits(client, chat="lamp own") == [angry]  # part of a chat title
    assert set(_hits(client, chat="c1")) >= {order, thanks}
    assert all(n in (order, thanks) or n in replies for n in _hits(client, chat="c1"))
    assert _hits(client, sentiment="negative") == [angry]
    assert _hits(client, account="shop", sentiment="positive") == [thanks]
    assert thanks in _hits(client, intent="praise") and order not in _hits(client, intent="praise")
    assert _hits(client, since="2026-01-15", until="2026-01-15") == [abroad]
    assert abroad not in _hits(client, since="2026-01-16")
    assert _hits(client, account="shop", q="order", sentiment="neutral") == [order]

    bad = client.get("/conversations", params={"since": "yesterday", "sentiment": "meh"})
    assert bad.status_code == 200
    assert "is not a date; use YYYY-MM-DD" in bad.text and "pick one of" in bad.text


def test_results_page_back_newest_first_without_gaps(
    client: TestClient, migrated_db: Database
) -> None:
    with migrated_db.session() as s:
        ids = [
            history.ingest(s, _msg("shop", n, f"note {n}", "c1", "u1", "Dana")).message_id
            for n in range(57)
        ]
    add_user(migrated_db, "olga", ActorRole.OPERATOR)
    log_in(client, "olga")
    first = client.get("/conversations", params={"q": "note"}).text
    older = re.search(r'href="([^"]+)" rel="next"', first)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&")).text
    pages = [int(n) for n in ROW.findall(first)], [int(n) for n in ROW.findall(second)]
    assert len(pages[0]) == 50 and pages[0] + pages[1] == sorted(ids, reverse=True)
    assert "No older messages." in second and 'href="/conversations?q=note">Newest' in second


def test_the_thread_shows_analysis_decisions_drafts_and_banned_users(
    client: TestClient, migrated_db: Database
) -> None:
    _seed(migrated_db)
    add_user(migrated_db, "olga", ActorRole.OPERATOR)
    log_in(client, "olga")
    shop = client.get(f"/conversations/{_conversation(migrated_db, 'shop', 'c1')}").text
    texts = [text.strip() for text in re.findall(r'<div class="text">(.*?)</div>', shop, re.S)]
    assert texts == ["Where is my order #1234?", REPLY, "Thank you so much, great service!", REPLY]
    assert "intent question" in shop and "decision auto" in shop
    assert shop.count(", auto_send by policy") == 2  # each reply names its draft and sender
    assert "draft #" in shop and "sent (auto_send by policy)" in shop
    assert "Hand off to people" in shop and "Dana" in shop

    helped = client.get(f"/conversations/{_conversation(migrated_db, 'help', 'c9')}").text
    assert "decision review" in helped and "queued</a>" in helped  # a link to the queue

    banned = client.get(f"/conversations/{_conversation(migrated_db, 'shop', 'c4')}").text
    assert "first words" in banned  # stored before the ban
    assert "my secret words" not in banned and "(banned user: text not kept)" in banned
    assert "Unban" in banned and 'flag-block">banned' in banned
    search = client.get("/conversations", params={"user": "u4"}).text
    assert "(banned user: text not kept)" in search and "my secret words" not in search


def test_a_moderator_sees_and_acts_on_their_accounts_only(
    client: TestClient, migrated_db: Database
) -> None:
    _seed(migrated_db)
    add_user(migrated_db, "alice", accounts=frozenset({"help"}))
    token = log_in(client, "alice")
    helpme = _id(migrated_db, "hi, can you help me with my order?")
    assert _hits(client) == [helpme]
    assert _hits(client, account="shop") == [] and _hits(client, q="order") == [helpme]
    page = client.get("/conversations").text
    assert '<option value="shop"' not in page  # the account filter offers only hers
    assert "Adapters" not in page  # operators' page, hidden from moderators

    other = _conversation(migrated_db, "shop", "c1")
    assert client.get(f"/conversations/{other}").status_code == 404
    assert client.get("/conversations/999999").status_code == 404
    for action, data in (("handoff", {}), ("ban", {"user_id": "u1"})):
        answer = client.post(f"/conversations/{other}/{action}", data={"csrf_token": token, **data})
        assert answer.status_code == 404
    with migrated_db.session() as s:
        assert (
            s.scalar(
                select(m.PlatformUser.banned_at).where(m.PlatformUser.platform_user_id == "u1")
            )
            is None
        )
    assert _audit(migrated_db) == []


def test_hand_off_hand_back_ban_and_unban_from_the_thread(
    client: TestClient, migrated_db: Database
) -> None:
    _seed(migrated_db)
    add_user(migrated_db, "alice", accounts=frozenset({"shop"}))
    token = log_in(client, "alice")
    chat = _conversation(migrated_db, "shop", "c1")
    base = f"/conversations/{chat}"

    def post(action: str, **data: str) -> str:
        answer = client.post(f"{base}/{action}", data={"csrf_token": token, **data})
        assert answer.status_code == 200 and answer.url.path == base, answer.text
        return answer.text

    assert "is handed to people" in post("handoff")
    assert "Hand back to the bot" in client.get(base).text
    assert "handed back to the bot" in post("handback")
    refused = post("handback")  # nothing to give back: refused with the service's note
    assert "note-error" in refused and "not handed off; nothing changed" in refused
    assert "is banned from" in post("ban", user_id="u1", reason="abuse")
    assert "Unban" in client.get(base).text
    assert "no longer banned" in post("unban", user_id="u1")

    assert _audit(migrated_db) == [
        ("web", "handoff", "c1", "web:alice"),
        ("web", "handback", "c1", "web:alice"),
        ("web", "ban", "u1", "web:alice"),
        ("web", "unban", "u1", "web:alice"),
    ]
    with migrated_db.session() as s:
        assert (
            s.scalar(select(m.Conversation.handed_off_at).where(m.Conversation.id == chat)) is None
        )


@pytest.mark.parametrize("token", [None, "wrong"])
def test_actions_without_the_csrf_token_are_refused(
    client: TestClient, migrated_db: Database, token: str | None
) -> None:
    _seed(migrated_db)
    add_user(migrated_db, "olga", ActorRole.OPERATOR)
    log_in(client, "olga")
    chat = _conversation(migrated_db, "shop", "c1")
    data = {} if token is None else {"csrf_token": token}
    assert client.post(f"/conversations/{chat}/handoff", data=data).status_code == 403
    assert (
        client.post(f"/conversations/{chat}/ban", data={**data, "user_id": "u1"}).status_code == 403
    )
    assert _audit(migrated_db) == []


def test_without_a_session_the_page_redirects_to_login(client: TestClient) -> None:
    answer = client.get("/conversations?q=x", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=%2Fconversations")


@pytest.fixture
def server(app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


def test_in_chromium_search_open_a_thread_and_hand_it_off(
    browser: Browser, server: LiveServer, migrated_db: Database, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    _seed(migrated_db)
    add_user(migrated_db, "alice", accounts=frozenset({"shop"}))
    page = browser.new_context().new_page()
    page.goto(f"{server.url}/conversations")
    page.fill('input[name="name"]', "alice")
    page.fill('input[name="password"]', PASSWORD)
    page.press('input[name="password"]', "Enter")
    page.wait_for_url("**/conversations")
    page.fill('input[name="q"]', "parcel")
    page.select_option('select[name="sentiment"]', "negative")
    page.click("button.primary")
    expect(page.locator("tr.hit")).to_have_count(1)
    page.screenshot(path=tmp_path / "conversations.png", full_page=True)
    page.click("tr.hit a")
    expect(page.locator("h1")).to_have_text("Lamp owners")
    expect(page.locator("li.turn-user .meta").first).to_contain_text("negative")
    page.click("text=Hand off to people")
    expect(page.locator("#notice")).to_contain_text("is handed to people")
    expect(page.locator("button", has_text="Hand back to the bot")).to_be_visible()
    page.screenshot(path=tmp_path / "conversation.png", full_page=True)
    # The complaint's queued draft is stopped by the handoff, in alice's name, and the message
    # waits for a person's own reply.
    meta = page.locator("li.turn-user .meta").first
    expect(meta).to_contain_text("queued")
    expect(meta).not_to_contain_text("rejected")
    audit = _audit(migrated_db)
    assert audit[-1] == ("web", "handoff", "g2", "web:alice")
    assert [action for _, action, _, _ in audit[:-1]] == ["handoff"]
