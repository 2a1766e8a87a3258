"""Server time of each dashboard page for one account with a few thousand stored messages
(the target: under 300 ms per page).

Seeds a database as benchmarks/analytics_bench.py does (N inbound messages over D days with
analyses, decisions, replies, drafts decided by three moderators), adds a queue of drafts
waiting for a moderator and a topics run fitted by the real job, builds the app with
`create_app`, logs in as an operator with a TestClient (in process: no network, no browser)
and times each page R times: the queue (and one draft's panel, which the page fetches), the
conversations list, the busiest thread, the adapters page, and the analytics page cold (its
cache and the plots' memo emptied before every request) and warm (within the minute its
figures are kept). `/healthz` in the same run is the bare baseline: what any request costs
here, routing and the test client included.

Run: `python -m benchmarks.web_pages_bench [--messages 5000] [--days 30] [--repeats 9]
[--database-url URL]` (a fresh SQLite file by default; a PostgreSQL URL must name an empty
database).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from benchmarks.analytics_bench import seed as seed_messages
from bot.analytics import plots
from bot.analytics.topics_job import TopicsJob
from bot.config import Settings
from bot.domain import ActorRole, DecisionAction, Draft, DraftStatus, Verdict, VerdictAction
from bot.moderation import ModerationService
from bot.safety.context import NO_CONTEXT, CheckContext
from bot.storage import drafts as draft_store
from bot.storage import models as m
from bot.storage import web_users
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema
from bot.web.analytics_view import AnalyticsCache
from bot.web.app import create_app
from bot.web.passwords import hash_password

PASSWORD = "benchmark only"
QUEUED = 40
REPLY = "Sorry for the wait! Your order left our warehouse today."
ANALYTICS = "/analytics?account=shop&days=30"


def seed(db: Database, messages: int, days: int) -> None:
    now = datetime.now(UTC)
    account_id = seed_messages(db, messages, days, now)
    with db.session() as s:
        chats = s.execute(
            select(m.Conversation.id, m.PlatformUser.id)
            .join(m.PlatformUser, m.PlatformUser.platform_user_id == m.Conversation.chat_id)
            .where(m.Conversation.account_id == account_id)
            .where(m.PlatformUser.account_id == account_id)
        ).all()
        # A queue: the newest messages waiting for review, each with a draft.
        for i in range(QUEUED):
            when = now - timedelta(minutes=5 * i)
            message = m.Message(
                account_id=account_id,
                conversation_id=chats[i % len(chats)][0],
                user_id=chats[i % len(chats)][1],
                direction=m.Direction.INBOUND,
                platform_message_id=f"q{i}",
                text=f"where is my order {1000 + i}? it has not moved since monday",
                decision=DecisionAction.REVIEW,
                handled_at=when,
                sent_at=when,
                created_at=when,
            )
            s.add(message)
            s.flush()
            draft_store.create_draft(
                s,
                message_id=message.id,
                draft=Draft(REPLY, REPLY, False, "bench"),
                verdict=Verdict(VerdictAction.ALLOW, 0.01),
                status=DraftStatus.QUEUED,
            )
        web_users.add(s, "root", hash_password(PASSWORD), ActorRole.OPERATOR, None)
    TopicsJob(db, ["shop"], window_days=7).fit("shop")


def log_in(client: TestClient) -> None:
    page = client.get("/login").text
    token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    answer = client.post(
        "/login",
        data={"name": "root", "password": PASSWORD, "csrf_token": token, "next": "/queue"},
        follow_redirects=False,
    )
    if answer.status_code != 303:
        raise SystemExit(f"could not log in ({answer.status_code}): {answer.text[:200]}")


def timed(
    client: TestClient, path: str, repeats: int, before: Callable[[], None] = lambda: None
) -> tuple[list[float], list[float], int]:
    """Wall and CPU milliseconds of `repeats` requests (after one warm-up), and the size."""
    client.get(path).raise_for_status()
    wall, cpu = [], []
    size = 0
    for _ in range(repeats):
        before()
        started, started_cpu = time.perf_counter(), time.process_time()
        answer = client.get(path)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        answer.raise_for_status()
        size = len(answer.content)
    return wall, cpu, size


def busiest_thread(db: Database) -> int:
    with db.session() as s:
        row = s.execute(
            select(m.Message.conversation_id, func.count())
            .group_by(m.Message.conversation_id)
            .order_by(func.count().desc())
            .limit(1)
        ).one()
    return int(row[0])


def first_queued(db: Database) -> int:
    with db.session() as s:
        found = s.scalar(
            select(func.min(m.ReplyDraft.id)).where(m.ReplyDraft.status == DraftStatus.QUEUED)
        )
    assert found is not None
    return int(found)


Row = tuple[str, list[float], list[float], int]  # name, wall ms, CPU ms, bytes


def run(app: FastAPI, db: Database, repeats: int) -> list[Row]:
    def cold() -> None:
        app.state.analytics_cache = AnalyticsCache()
        plots.clear_cache()

    thread = busiest_thread(db)
    pages: list[tuple[str, str, Callable[[], None]]] = [
        ("bare baseline: /healthz", "/healthz", lambda: None),
        ("queue", "/queue", lambda: None),
        ("queue: one draft's panel", f"/queue/drafts/{first_queued(db)}", lambda: None),
        ("conversations list", "/conversations", lambda: None),
        (f"thread (busiest, conversation {thread})", f"/conversations/{thread}", lambda: None),
        ("adapters", "/adapters", lambda: None),
        ("analytics 30 days, cold", ANALYTICS, cold),
        ("analytics 30 days, warm (cached)", ANALYTICS, lambda: None),
        ("analytics 90 days, cold", "/analytics?account=shop&days=90", cold),
    ]
    rows: list[Row] = []
    with TestClient(app) as client:
        log_in(client)
        for name, path, before in pages:
            wall, cpu, size = timed(client, path, repeats, before)
            rows.append((name, wall, cpu, size))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="call gc.freeze() once the app is built, as a server could at startup: a full "
        "garbage collection then skips the ~300k objects of the imports (about 130 ms, every "
        "third cold analytics page)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        ensure_schema(url)
        db = Database(url)
        started = time.perf_counter()
        seed(db, args.messages, args.days)
        print(
            f"seeded {args.messages} messages over {args.days} days, {QUEUED} queued drafts and "
            f"a topics run in {time.perf_counter() - started:.1f} s ({url.split(':')[0]})"
        )
        settings = Settings(database_url=url, web_secret_file=Path(tmp) / "secret")
        app = create_app(settings, db, ModerationService(db, gate=lambda: _AllowAll()))
        if args.gc_freeze:
            gc.collect()
            gc.freeze()
        rows = run(app, db, args.repeats)
        db.dispose()
    width = max(len(name) for name, *_ in rows)
    frozen = ", gc.freeze() after startup" if args.gc_freeze else ""
    print(f"{args.repeats} requests each (after one warm-up{frozen}); milliseconds")
    print(f"| {'page':<{width}} | median | max | CPU median | KiB |")
    print(f"|{'-' * (width + 2)}|---:|---:|---:|---:|")
    for name, wall, cpu, size in rows:
        print(
            f"| {name:<{width}} | {statistics.median(wall):.1f} | {max(wall):.1f} | "
            f"{statistics.median(cpu):.1f} | {size / 1024:.0f} |"
        )


class _AllowAll:
    """The pages, not the safety gate, are what is timed."""

    def check_draft(self, text: str, context: CheckContext = NO_CONTEXT) -> Verdict:
        return Verdict(VerdictAction.ALLOW, 0.0)


if __name__ == "__main__":
    main()
