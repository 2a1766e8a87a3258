"""The Adapters page over HTTP on both backends: versions registered through the real registry
(files on disk, metadata, stored eval verdicts), operators only, and Promote / Rollback
changing the registry with audit rows naming the web user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.domain import ActorRole
from bot.storage import accounts as account_store
from bot.storage import models as m
from bot.storage.db import Database
from tests.web.conftest import PASSWORD, add_user, log_in
from tests.web.live import LiveServer
from training import registry

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def _trained(db: Database, root: Path, account: str, kind: str, **metrics: Any) -> str:
    slot = registry.reserve(db, root, account, kind)
    (slot.path / "adapter_config.json").write_text("{}", encoding="utf-8")
    return registry.register(
        db, slot, base_model="tiny", data_hash="abc123", config={"r": 8}, metrics=metrics
    ).name


def _gate(db: Database, name: str, promote: bool, reason: str) -> None:
    """Store an eval verdict the way `adapters eval` does."""
    registry.record_metrics(
        db,
        name,
        {
            "eval": {
                "baseline": "base model",
                "promote": promote,
                "reason": reason,
                "candidate": {"perplexity": 9.5, "fallback_rate": 0.02},
                "baseline_metrics": {"perplexity": 12.25, "fallback_rate": 0.05},
            }
        },
    )


@pytest.fixture
def versions(migrated_db: Database, tmp_path: Path) -> dict[str, str]:
    with migrated_db.session() as s:
        account_store.bind(s, "shop", "console", "shop")
        account_store.bind(s, "help", "console", "help")
    root = tmp_path / "adapters"
    made = {
        "v1": _trained(migrated_db, root, "shop", "reply", perplexity=12.25),
        "v2": _trained(migrated_db, root, "shop", "reply", perplexity=9.5),
        "v3": _trained(migrated_db, root, "shop", "reply", perplexity=14.0),
        "head": _trained(
            migrated_db, root, "help", "safety", macro_f1=0.81, false_positive_rate=0.03
        ),
    }
    _gate(migrated_db, made["v2"], True, "held-out perplexity 9.500 against 12.250")
    _gate(migrated_db, made["v3"], False, "perplexity 14.000 is not 2% under 12.250")
    registry.promote(migrated_db, made["v1"], registry.operator("olga-cli"))
    return made


def _audit(db: Database) -> list[tuple[str, str, str, str | None, str | None]]:
    with db.session() as s:
        rows = s.execute(
            select(
                m.ModerationAction.actor_kind,
                m.ModerationAction.moderator,
                m.ModerationAction.action,
                m.ModerationAction.target,
                m.ModerationAction.note,
            )
            .where(m.ModerationAction.actor_kind == "web")
            .order_by(m.ModerationAction.id)
        ).all()
    return [(kind, who, action.value, target, note) for kind, who, action, target, note in rows]


def _active(db: Database, account: str = "shop", kind: str = "reply") -> str | None:
    found = registry.active(db, account, kind)
    return found.name if found is not None else None


def test_operators_see_versions_metrics_and_the_eval_comparison(
    client: TestClient, migrated_db: Database, versions: dict[str, str]
) -> None:
    add_user(migrated_db, "olga", ActorRole.OPERATOR)
    log_in(client, "olga")
    page = client.get("/adapters").text
    assert '<a href="/adapters"' in page  # in the nav for operators
    for name in versions.values():
        assert f'data-adapter="{name}"' in page
    assert "shop · reply" in page and "help · safety" in page
    assert "Active: <strong>shop-reply-v1</strong>" in page
    assert "perplexity 12.25" in page and "false_positive_rate 0.03" in page
    # v2's stored verdict as a table: baseline against this version.
    assert "<strong>PROMOTE</strong>: held-out perplexity 9.500 against 12.250" in page
    assert "<td>fallback_rate</td><td>0.05</td><td>0.02</td>" in page
    assert "<strong>KEEP</strong>: perplexity 14.000 is not 2% under 12.250" in page
    assert page.count('name="force"') == 1  # only the version the gate kept back
    assert "not evaluated" in page  # v1 and the head never went through the gate


def test_moderators_get_403_and_no_nav_entry(
    client: TestClient, migrated_db: Database, versions: dict[str, str]
) -> None:
    add_user(migrated_db, "alice")  # a moderator of every account is still no operator
    token = log_in(client, "alice")
    assert client.get("/adapters").status_code == 403
    assert 'href="/adapters"' not in client.get("/queue").text
    promote = client.post(f"/adapters/{versions['v2']}/promote", data={"csrf_token": token})
    rollback = client.post(
        "/adapters/rollback", data={"csrf_token": token, "account": "shop", "kind": "reply"}
    )
    assert promote.status_code == rollback.status_code == 403
    assert _active(migrated_db) == versions["v1"] and _audit(migrated_db) == []


def test_promote_and_rollback_change_the_registry_and_audit_the_web_user(
    client: TestClient, migrated_db: Database, versions: dict[str, str]
) -> None:
    add_user(migrated_db, "olga", ActorRole.OPERATOR)
    token = log_in(client, "olga")
    v1, v2 = versions["v1"], versions["v2"]

    promoted = client.post(
        f"/adapters/{v2}/promote", data={"csrf_token": token, "note": "better perplexity"}
    )
    assert promoted.status_code == 200 and promoted.url.path == "/adapters"
    assert f"{v2} is now shop&#39;s active reply adapter" in promoted.text
    assert _active(migrated_db) == v2 and registry.get(migrated_db, v1).status == "retired"

    rolled = client.post(
        "/adapters/rollback",
        data={"csrf_token": token, "account": "shop", "kind": "reply", "note": "complaints"},
    )
    assert f"Rolled back: shop&#39;s active reply adapter is {v1} again" in rolled.text
    assert _active(migrated_db) == v1
    assert _audit(migrated_db) == [
        ("web", "web:olga", "promote", v2, "better perplexity"),
        ("web", "web:olga", "rollback", v2, "complaints"),
    ]

    # Rolling back past the first version leaves the base model; once more is refused.
    client.post(
        "/adapters/rollback", data={"csrf_token": token, "account": "shop", "kind": "reply"}
    )
    assert _active(migrated_db) is None
    refused = client.post(
        "/adapters/rollback", data={"csrf_token": token, "account": "shop", "kind": "reply"}
    ).text
    assert "note-error" in refused and len(_audit(migrated_db)) == 3


def test_a_version_the_gate_kept_back_needs_force_and_a_reason(
    client: TestClient, migrated_db: Database, versions: dict[str, str]
) -> None:
    add_user(migrated_db, "olga", ActorRole.OPERATOR)
    token = log_in(client, "olga")
    v3 = versions["v3"]
    url = f"/adapters/{v3}/promote"
    plain = client.post(url, data={"csrf_token": token}).text
    assert "The eval gate kept the active adapter over shop-reply-v3" in plain
    no_reason = client.post(url, data={"csrf_token": token, "force": "true"}).text
    assert "give a reason" in no_reason
    assert _active(migrated_db) == versions["v1"] and _audit(migrated_db) == []

    forced = client.post(url, data={"csrf_token": token, "force": "true", "note": "A/B test"})
    assert "note-ok" in forced.text and _active(migrated_db) == v3
    assert _audit(migrated_db) == [("web", "web:olga", "promote", v3, "A/B test")]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_promote_and_rollback_need_the_csrf_token(
    client: TestClient, migrated_db: Database, versions: dict[str, str], token: str | None
) -> None:
    add_user(migrated_db, "olga", ActorRole.OPERATOR)
    log_in(client, "olga")
    data = {} if token is None else {"csrf_token": token}
    assert client.post(f"/adapters/{versions['v2']}/promote", data=data).status_code == 403
    rollback = client.post("/adapters/rollback", data={**data, "account": "shop", "kind": "reply"})
    assert rollback.status_code == 403
    assert _active(migrated_db) == versions["v1"] and _audit(migrated_db) == []


@pytest.fixture
def server(app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


def test_in_chromium_an_operator_promotes_a_version(
    browser: Browser,
    server: LiveServer,
    migrated_db: Database,
    versions: dict[str, str],
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    add_user(migrated_db, "olga", ActorRole.OPERATOR)
    page = browser.new_context().new_page()
    page.goto(f"{server.url}/adapters")
    page.fill('input[name="name"]', "olga")
    page.fill('input[name="password"]', PASSWORD)
    page.press('input[name="password"]', "Enter")
    page.wait_for_url("**/adapters")
    page.screenshot(path=tmp_path / "adapters.png", full_page=True)
    row = page.locator(f'tr[data-adapter="{versions["v2"]}"]')
    row.locator('input[name="note"]').fill("better perplexity")
    row.locator("button", has_text="Promote").click()
    expect(page.locator("#notice")).to_contain_text(f"{versions['v2']} is now shop's active")
    expect(page.locator("#shop-reply")).to_contain_text(f"Active: {versions['v2']}")
    assert _audit(migrated_db) == [
        ("web", "web:olga", "promote", versions["v2"], "better perplexity")
    ]
