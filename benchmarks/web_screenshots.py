"""Refresh the dashboard screenshots in docs/screenshots/ (the tests write theirs to a
temporary folder only, so the test suite never dirties the work tree).

Seeds a throw-away SQLite database with a small support queue (a conversation, a flagged and a
blocked draft, sampled candidates) and a month of history with a topics run for the analytics
page, serves the real app on a free port, and drives
Debian's chromium (Playwright with executable_path) through the login page and every page in
the navigation bar and one conversation's thread, as an operator (who sees every page).

Run: `python -m benchmarks.web_screenshots [--out docs/screenshots] [--chromium /usr/bin/chromium]`
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from benchmarks.history_seed import seed_history
from bot.analytics.topics_job import TopicsJob
from bot.config import DEFAULT_INTENTS, Settings
from bot.domain import (
    ActorRole,
    Candidate,
    Draft,
    DraftStatus,
    DropReason,
    Incoming,
    Verdict,
    VerdictAction,
)
from bot.moderation import ModerationService
from bot.nlp.classify import LexicalClassifier
from bot.safety.context import NO_CONTEXT, CheckContext
from bot.storage import drafts as draft_store
from bot.storage import history, web_users
from bot.storage import models as m
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema
from bot.web.app import PAGES, create_app
from bot.web.passwords import hash_password
from bot.web.serve import bind, serve

PASSWORD = "screenshots only"
ALLOW = Verdict(VerdictAction.ALLOW, 0.02)

# (chat, user, earlier messages, the queued message, draft, verdict, candidates)
QUEUE = [
    (
        "1001",
        "Dana",
        ["Hi! I ordered the blue lamp last Tuesday.", "Order number is 48213."],
        "The tracking page has not changed for a week, where is my order?",
        "Sorry about the wait, Dana! Order 48213 left our warehouse on Friday; the carrier's "
        "page can lag a few days. I'll check with them and get back to you today.",
        ALLOW,
        (),
    ),
    (
        "1002",
        "Sam",
        [],
        "Why was I charged twice?? This is ridiculous, I want a refund today.",
        "I'm sorry for the double charge. One of the two payments is a hold that drops off "
        "within 3 days; if it doesn't, we refund it right away.",
        Verdict(VerdictAction.REVIEW, 0.31, ("commitment",)),
        (
            Candidate("I'm sorry for the double charge. One of the two ...", "", -0.61),
            Candidate("We will refund you today.", "", -0.74, dropped=DropReason.OUTRANKED),
            Candidate("refund refund refund", "", -2.9, dropped=DropReason.REPETITIVE),
        ),
    ),
    (
        "1003",
        "troll42",
        [],
        "your shop is garbage and so are you",
        "You idiots deserve it.",
        Verdict(VerdictAction.BLOCK, 0.93, ("toxic",)),
        (),
    ),
    (
        "1004",
        "Priya",
        ["Do you ship to Canada?"],
        "And can I change the delivery address of order 48990?",
        "Yes, we ship to Canada! Send us the new address and we'll update order 48990 before "
        "it leaves the warehouse.",
        ALLOW,
        (),
    ),
]


def seed(db: Database) -> None:
    classifier = LexicalClassifier(DEFAULT_INTENTS)
    start = datetime.now(UTC) - timedelta(hours=3)
    n = 0
    with db.session() as s:
        for chat, user, earlier, text, reply, verdict, candidates in QUEUE:
            for line in [*earlier, text]:
                n += 1
                stored = history.ingest(
                    s,
                    Incoming(
                        platform="telegram",
                        account="shop",
                        chat_id=chat,
                        message_id=str(n),
                        user_id=f"u{chat}",
                        user_name=user,
                        text=line,
                        sent_at=start + timedelta(minutes=n),
                    ),
                )
                history.save_analysis(s, stored.message_id, classifier.classify(line), ALLOW)
            draft_store.create_draft(
                s,
                message_id=stored.message_id,
                draft=Draft(reply, reply, False, "SmolLM2-135M-Instruct", candidates=candidates),
                verdict=verdict,
                status=DraftStatus.QUEUED,
            )
        web_users.add(s, "root", hash_password(PASSWORD), ActorRole.OPERATOR, None)


def shoot(url: str, out: Path, chromium: str, thread: int) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"{url}/login")
        written.append(out / "login.png")
        page.screenshot(path=written[-1])
        page.fill("input[name=name]", "root")
        page.fill("input[name=password]", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url("**/queue")
        for nav in PAGES:
            page.goto(f"{url}{nav.path}")
            page.wait_for_load_state("networkidle")
            written.append(out / f"{nav.path.strip('/').replace('/', '-') or 'home'}.png")
            page.screenshot(path=written[-1], full_page=True)
        page.goto(f"{url}/conversations/{thread}")
        written.append(out / "thread.png")
        page.screenshot(path=written[-1], full_page=True)
        page.goto(f"{url}/queue")
        page.keyboard.press("j")
        page.wait_for_selector("#detail .candidates")
        page.keyboard.press("e")
        written.append(out / "queue-edit.png")
        page.screenshot(path=written[-1], full_page=True)
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'screens.db'}"
        ensure_schema(url)
        db = Database(url)
        seed(db)
        seed_history(db, "shop")  # a month of messages and topics for the analytics page
        TopicsJob(db, ["shop"], window_days=7).fit("shop")
        with db.session() as s:
            chat_1001 = select(m.Conversation.id).where(m.Conversation.chat_id == "1001")
            dana = s.scalars(chat_1001).one()
        settings = Settings(database_url=url, web_secret_file=Path(tmp) / "secret")
        app = create_app(settings, db, ModerationService(db, gate=lambda: _AllowAll()))
        sock = bind("127.0.0.1", 0)
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        thread = threading.Thread(
            target=loop.run_until_complete, args=(serve(app, sock, stop),), daemon=True
        )
        thread.start()
        try:
            base = f"http://127.0.0.1:{sock.getsockname()[1]}"
            for path in shoot(base, args.out, args.chromium, dana):
                print(path)
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)
            loop.close()
            db.dispose()


class _AllowAll:
    """The pages, not the safety gate, are what the screenshots show."""

    def check_draft(self, text: str, context: CheckContext = NO_CONTEXT) -> Verdict:
        return ALLOW


if __name__ == "__main__":
    main()
