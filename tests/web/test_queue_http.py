"""The Queue page over HTTP on both backends: what it shows, what each action writes (outbox
and audit rows as the web actor), conflicts, account scoping, and chat/user/send actions."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.domain import ActorRole, Candidate, DropReason, Incoming, VerdictAction
from bot.storage import history
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import queue_draft
from tests.web.conftest import add_user, log_in

JSON = {"Accept": "application/json"}


def _audit(db: Database) -> list[tuple[str, str, str, str | None]]:
    with db.session() as s:
        rows = s.execute(
            select(
                m.ModerationAction.actor_kind,
                m.ModerationAction.moderator,
                m.ModerationAction.action,
                m.ModerationAction.after_text,
            ).order_by(m.ModerationAction.id)
        ).all()
    return [(kind, who, action.value, after) for kind, who, action, after in rows]


def _outbox(db: Database) -> list[tuple[int | None, str]]:
    with db.session() as s:
        rows = s.execute(
            select(m.OutboxItem.draft_id, m.OutboxItem.text).order_by(m.OutboxItem.id)
        ).all()
    return [(draft_id, text) for draft_id, text in rows]


def _status(db: Database, draft_id: int) -> str:
    with db.session() as s:
        status = s.scalar(select(m.ReplyDraft.status).where(m.ReplyDraft.id == draft_id))
    assert status is not None
    return status.value


def test_the_page_shows_each_draft_with_its_conversation_analysis_and_candidates(
    client: TestClient, migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    with migrated_db.session() as s:
        history.ingest(
            s,
            Incoming(
                platform="console",
                account="shop",
                chat_id="500",
                message_id="earlier",
                user_id="9",
                user_name="Dana",
                text="I ordered a lamp last week",
            ),
        )
    candidates = (
        Candidate("It ships today.", "It ships today.", -0.5),
        Candidate("Soon!", "Soon!", -1.5, dropped=DropReason.OUTRANKED),
    )
    _, first = queue_draft(migrated_db, "where is my order?", candidates=candidates)
    _, second = queue_draft(migrated_db, "you idiots", "Sorry!", verdict=VerdictAction.BLOCK)
    log_in(client, "alice")
    page = client.get(f"/queue?d={first}").text
    assert f"Draft #{first}" in page
    assert "I ordered a lamp last week" in page  # the conversation before the message
    assert "where is my order?" in page and "It ships today." in page
    assert "Candidates (2, best first)" in page and "outranked" in page
    assert f'data-id="{second}"' in page  # the other draft is in the list
    blocked = client.get(f"/queue/drafts/{second}").text
    assert "flag-block" in blocked and 'name="override"' in blocked  # approve needs a reason


def test_approve_edit_reject_write_the_outbox_and_the_audit_as_the_web_user(
    client: TestClient, migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    drafts = [queue_draft(migrated_db, f"question {n}", f"answer {n}")[1] for n in range(3)]
    token = log_in(client, "alice")
    approved = client.post(
        f"/queue/drafts/{drafts[0]}/approve", data={"csrf_token": token}, headers=JSON
    )
    assert approved.status_code == 200 and approved.json()["ok"] is True
    # A plain form post (no script) gets a redirect back to the queue and a note there.
    edited = client.post(
        f"/queue/drafts/{drafts[1]}/edit",
        data={"csrf_token": token, "text": "a better answer"},
        follow_redirects=False,
    )
    assert edited.status_code == 303 and edited.headers["location"] == "/queue"
    client.get("/queue/list")  # the page's polling leaves the note for the page
    assert f"Draft #{drafts[1]} edited" in client.get("/queue").text
    rejected = client.post(
        f"/queue/drafts/{drafts[2]}/reject",
        data={"csrf_token": token, "reason": "off topic"},
        headers=JSON,
    )
    assert rejected.json()["status"] == "rejected"
    assert [_status(migrated_db, d) for d in drafts] == ["approved", "edited", "rejected"]
    assert _outbox(migrated_db) == [(drafts[0], "answer 0"), (drafts[1], "a better answer")]
    assert _audit(migrated_db) == [
        ("web", "web:alice", "approve", "answer 0"),
        ("web", "web:alice", "edit", "a better answer"),
        ("web", "web:alice", "reject", None),
    ]


def test_a_draft_handled_by_someone_else_is_refused_with_a_clear_note(
    client: TestClient, new_client: Callable[[], TestClient], migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    add_user(migrated_db, "bob")
    _, draft_id = queue_draft(migrated_db)
    alice, bob = client, new_client()
    alice_token, bob_token = log_in(alice, "alice"), log_in(bob, "bob")
    first = alice.post(
        f"/queue/drafts/{draft_id}/approve", data={"csrf_token": alice_token}, headers=JSON
    )
    second = bob.post(
        f"/queue/drafts/{draft_id}/edit",
        data={"csrf_token": bob_token, "text": "mine instead"},
        headers=JSON,
    )
    assert first.status_code == 200
    assert second.status_code == 409
    assert "already approved by someone else" in second.json()["message"]
    plain = bob.post(f"/queue/drafts/{draft_id}/reject", data={"csrf_token": bob_token})
    assert plain.status_code == 409 and "already approved by someone else" in plain.text
    assert _outbox(migrated_db) == [(draft_id, "It ships today.")]
    assert [row[1:3] for row in _audit(migrated_db)] == [("web:alice", "approve")]
    # The list the page polls no longer shows it.
    assert f'data-id="{draft_id}"' not in bob.get("/queue/list").text


def test_a_moderator_of_one_account_cannot_see_or_act_on_another(
    client: TestClient, migrated_db: Database
) -> None:
    add_user(migrated_db, "shopmod", accounts=frozenset({"shop"}))
    _, mine = queue_draft(migrated_db, "shop question", account="shop")
    _, theirs = queue_draft(migrated_db, "bank secret question", account="bank")
    token = log_in(client, "shopmod")
    page = client.get("/queue").text
    assert f'data-id="{mine}"' in page and f'data-id="{theirs}"' not in page
    assert "bank secret question" not in page
    assert client.get(f"/queue/drafts/{theirs}").status_code == 404
    assert "bank secret" not in client.get(f"/queue?d={theirs}").text
    assert client.get("/queue?account=bank").status_code == 403
    acted = client.post(f"/queue/drafts/{theirs}/approve", data={"csrf_token": token}, headers=JSON)
    assert acted.status_code == 403
    banned = client.post(
        "/queue/users/ban", data={"csrf_token": token, "account": "bank", "user_id": "9"}
    )
    assert banned.status_code == 403
    assert _status(migrated_db, theirs) == "queued" and _outbox(migrated_db) == []
    # Each refusal is audited, as the web user.
    assert [(k, who, action) for k, who, action, _ in _audit(migrated_db)][-2:] == [
        ("web", "web:shopmod", "refused"),
        ("web", "web:shopmod", "refused"),
    ]


def test_operators_see_every_account(client: TestClient, migrated_db: Database) -> None:
    add_user(migrated_db, "boss", ActorRole.OPERATOR)
    ids = [queue_draft(migrated_db, account=name)[1] for name in ("shop", "bank")]
    log_in(client, "boss")
    page = client.get("/queue").text
    assert all(f'data-id="{d}"' in page for d in ids)


def test_handoff_reply_handback_ban_and_cancel_go_through_the_service(
    client: TestClient, migrated_db: Database
) -> None:
    add_user(migrated_db, "alice")
    _, draft_id = queue_draft(migrated_db, chat_id="777", user_id="42")
    token = log_in(client, "alice")
    # A moderator's own text instead of the model's: it waits to be sent, and can be stopped.
    reply = client.post(
        f"/queue/drafts/{draft_id}/reply",
        data={"csrf_token": token, "text": "Hi, Sam here."},
        headers=JSON,
    )
    assert reply.json()["ok"]
    (outbox_id,) = [row_id for (row_id,) in _pending(migrated_db)]
    assert f"/queue/sends/{outbox_id}/cancel" in client.get("/queue").text
    cancel = client.post(f"/queue/sends/{outbox_id}/cancel", data={"csrf_token": token})
    assert cancel.status_code == 200  # followed the redirect back to the queue
    assert "cancelled; nothing was sent" in cancel.text
    chat = {"csrf_token": token, "account": "shop", "chat_id": "777"}
    assert client.post("/queue/chats/handoff", data=chat, headers=JSON).json()["ok"]
    assert "Hand the chat back to the bot" in client.get(f"/queue/drafts/{draft_id}").text
    again = client.post("/queue/chats/handoff", data=chat, headers=JSON)
    assert again.status_code == 409 and "already handed to people" in again.json()["message"]
    handback = client.post("/queue/chats/handback", data=chat, follow_redirects=False)
    assert handback.status_code == 303
    ban = client.post(
        "/queue/users/ban",
        data={"csrf_token": token, "account": "shop", "user_id": "42", "reason": "spam"},
        headers=JSON,
    )
    assert ban.json()["ok"] and "banned" in ban.json()["message"]
    actions = [(who, action) for _, who, action, _ in _audit(migrated_db)]
    assert actions == [
        ("web:alice", "reply"),
        ("web:alice", "cancel"),
        ("web:alice", "handoff"),
        ("web:alice", "handback"),
        ("web:alice", "ban"),
    ]


def _pending(db: Database) -> list[tuple[int]]:
    with db.session() as s:
        rows = s.execute(
            select(m.OutboxItem.id).where(m.OutboxItem.status == m.OutboxStatus.PENDING)
        ).all()
    return [(row_id,) for (row_id,) in rows]
