"""The training-data export on both backends: what goes in, what never does, and a hash that
says whether the data changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, update

from bot.config import Settings, load_settings
from bot.domain import Candidate, DropReason, Verdict, VerdictAction
from bot.errors import InputError, NotFoundError
from bot.local_delivery import console_wake
from bot.moderation import ModerationService
from bot.safety.context import CheckContext
from bot.storage import labels as label_store
from bot.storage import models as m
from bot.storage.db import Database
from tests.fakes import OPERATOR, AllowAll, queue_draft
from training.export import ExportResult, export_account

SETTINGS = Settings()  # history_turns 6, at most 50 examples per user


class StricterGate:
    """The gate as it judges today: "forbidden" became a blocked word since the drafts were
    written (the export must re-run the current gate, not trust stored verdicts)."""

    def _judge(self, texts: Sequence[str]) -> list[Verdict]:
        return [
            Verdict(VerdictAction.BLOCK if "forbidden" in t else VerdictAction.ALLOW, 0.0)
            for t in texts
        ]

    def check_inputs(self, texts: Sequence[str], context: CheckContext) -> list[Verdict]:
        return self._judge(texts)

    def check_drafts(self, texts: Sequence[str], context: CheckContext) -> list[Verdict]:
        return self._judge(texts)


@pytest.fixture
def mod(migrated_db: Database) -> ModerationService:
    """Moderation as the CLI does it: a console account's approved reply is sent at once, so
    it becomes context for the next message."""
    return ModerationService(
        migrated_db,
        gate=AllowAll,
        wake=console_wake(migrated_db),
        intent_labels={"shop": ("question", "complaint", "other")},
    )


def _export(
    db: Database, folder: Path, **options: Any
) -> tuple[ExportResult, dict[str, list[dict[str, Any]]]]:
    options.setdefault("gate", StricterGate())
    result = export_account(db, SETTINGS, "shop", folder, **options)
    rows = {
        name: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for name, path in result.files.items()
    }
    return result, rows


def _removed(result: ExportResult) -> dict[str, dict[str, int]]:
    manifest = json.loads(result.manifest.read_text(encoding="utf-8"))
    return {rule["rule"]: rule["removed"] for rule in manifest["rules"] if rule["removed"]}


def _everything(folder: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()))


def test_sent_replies_come_with_their_context_and_edits_give_preferences(
    migrated_db: Database, mod: ModerationService, tmp_path: Path
) -> None:
    asked, first = queue_draft(migrated_db, "where is my order?", "It ships today.")
    mod.approve(OPERATOR, first)
    message, second = queue_draft(migrated_db, "and when will it arrive?", "Soon.")
    mod.edit(OPERATOR, second, "It arrives tomorrow before noon.")

    result, rows = _export(migrated_db, tmp_path / "out")

    assert [r["source"] for r in rows["sft.jsonl"]] == [
        {"message_id": asked, "draft_id": first, "review": "approved"},
        {"message_id": message, "draft_id": second, "review": "edited"},
    ]
    assert rows["sft.jsonl"][1] == {
        "account": "shop",
        "messages": [
            {"role": "user", "text": "where is my order?"},
            {"role": "bot", "text": "It ships today.", "target": False},
            {"role": "user", "text": "and when will it arrive?"},
            {"role": "bot", "text": "It arrives tomorrow before noon.", "target": True},
        ],
        "source": {"message_id": message, "draft_id": second, "review": "edited"},
    }
    (edit,) = rows["preferences.jsonl"]
    assert edit["kind"] == "edit" and edit["messages"][-1]["role"] == "user"
    assert (edit["chosen"], edit["rejected"]) == ("It arrives tomorrow before noon.", "Soon.")
    assert sorted(result.files) == ["preferences.jsonl", "sft.jsonl"]  # no labels: no files

    manifest = json.loads(result.manifest.read_text(encoding="utf-8"))
    assert manifest["counts"] == {"sft.jsonl": 2, "preferences.jsonl": 1} == result.counts
    for name, path in result.files.items():
        assert manifest["sha256"][name] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["data_hash"] == result.data_hash and manifest["account"] == "shop"
    assert manifest["since"] is None and manifest["code_version"]
    assert manifest["database"] == make_url(migrated_db.url).render_as_string(hide_password=True)


def test_rejected_blocked_fallback_queued_and_erased_never_reach_an_export(
    migrated_db: Database, mod: ModerationService, tmp_path: Path
) -> None:
    asked, rejected = queue_draft(migrated_db, "do you sell gift cards?", "No idea.")
    mod.reject(OPERATOR, rejected)
    _, better = queue_draft(migrated_db, reply="Yes, from 10 to 100 euros.", message_id=asked)
    mod.approve(OPERATOR, better)
    _, blocked = queue_draft(migrated_db, "hm", "BLOCKED TEXT", verdict=VerdictAction.BLOCK)
    mod.approve(OPERATOR, blocked, override="tested it")
    _, fallback = queue_draft(migrated_db, "??", "FALLBACK TEXT", fallback_used=True)
    mod.approve(OPERATOR, fallback)
    queue_draft(migrated_db, "anyone there?", "QUEUED TEXT")
    # An erased user in a group: their message is neither an example nor anyone's context.
    _, secret = queue_draft(migrated_db, "I am Erin Secret", "Hi Erin!", chat_id="-7", user_id="13")
    mod.approve(OPERATOR, secret)
    mod.relabel(OPERATOR, secret, intent="other")
    _, later = queue_draft(
        migrated_db, "what are your hours?", "9 to 5.", chat_id="-7", user_id="14"
    )
    mod.approve(OPERATOR, later)
    with migrated_db.session() as s:
        s.execute(
            update(m.PlatformUser)
            .where(m.PlatformUser.platform_user_id == "13")
            .values(erased=True)
        )

    result, rows = _export(migrated_db, tmp_path / "out")

    assert [r["source"]["draft_id"] for r in rows["sft.jsonl"]] == [better, later]
    assert rows["sft.jsonl"][1]["messages"][0] == {"role": "user", "text": "what are your hours?"}
    (pair,) = rows["preferences.jsonl"]
    assert pair["kind"] == "approved_vs_rejected"
    assert (pair["chosen"], pair["rejected"]) == ("Yes, from 10 to 100 euros.", "No idea.")
    everything = _everything(result.out_dir)
    for text in ("BLOCKED", "FALLBACK", "QUEUED", "Erin"):
        assert text not in everything
    assert _removed(result) == {
        "erased_user": {"labels": 1, "replies": 1},
        "not_sent": {"replies": 2},  # the rejected and the queued draft
        "fallback": {"replies": 1},
        "verdict_not_allow": {"replies": 1},
    }


def test_personal_data_is_scrubbed_everywhere(
    migrated_db: Database, mod: ModerationService, tmp_path: Path
) -> None:
    _, draft = queue_draft(
        migrated_db,
        "mail ann.lee@example.com or call +44 20 7946 0958, IBAN DE89 3704 0044 0532 0130 00",
        "We will write to ann.lee@example.com; track it at https://shop.test/t?id=991&u=ann",
    )
    mod.approve(OPERATOR, draft)
    mod.relabel(OPERATOR, draft, intent="question")

    result, rows = _export(migrated_db, tmp_path / "out")

    everything = _everything(result.out_dir)
    for secret in ("ann.lee@example.com", "7946", "DE89", "id=991"):
        assert secret not in everything
    (sft,) = rows["sft.jsonl"]
    assert sft["messages"] == [
        {"role": "user", "text": "mail <email> or call <phone>, IBAN <iban>"},
        {"role": "bot", "text": "We will write to <email>; track it at <url>", "target": True},
    ]
    assert rows["labels-intent.jsonl"] == [
        {
            "text": "mail <email> or call <phone>, IBAN <iban>",
            "label": "question",
            "source": "moderator:cli:tester",
        }
    ]
    assert json.loads(result.manifest.read_text(encoding="utf-8"))["scrubbed_texts"] >= 3


def test_the_gate_of_today_is_rerun(
    migrated_db: Database, mod: ModerationService, tmp_path: Path
) -> None:
    _, fine = queue_draft(migrated_db, "hi", "Hello! How can I help?")
    _, stale = queue_draft(migrated_db, "and this?", "That is forbidden now.")
    # Stored as allowed, but longer than the gate's reply cap (600 characters) today.
    _, long = queue_draft(migrated_db, "tell me everything", "We ship daily. " * 50)
    for draft in (fine, stale, long):
        mod.approve(OPERATOR, draft)

    stricter, rows = _export(migrated_db, tmp_path / "stricter")
    assert [r["source"]["draft_id"] for r in rows["sft.jsonl"]] == [fine, long]
    assert _removed(stricter) == {"gate_today": {"replies": 1}}

    # By default the export builds the gate the service builds: its length check drops `long`.
    real, rows = _export(migrated_db, tmp_path / "real", gate=None)
    assert [r["source"]["draft_id"] for r in rows["sft.jsonl"]] == [fine, stale]
    assert _removed(real) == {"gate_today": {"replies": 1}}


def test_duplicates_are_dropped_and_each_user_is_capped_keeping_the_newest(
    migrated_db: Database, mod: ModerationService, tmp_path: Path
) -> None:
    drafts = []
    for chat in ("1", "2"):  # the same exchange with two users
        _, draft = queue_draft(
            migrated_db, "hello", "Hi! How can I help?", chat_id=chat, user_id=chat
        )
        drafts.append(draft)
    for n in range(3):  # one chatty user, in three chats
        _, draft = queue_draft(
            migrated_db, f"question {n}", f"answer {n}", chat_id=f"3{n}", user_id="3"
        )
        drafts.append(draft)
    for draft in drafts:
        mod.approve(OPERATOR, draft)

    result, rows = _export(migrated_db, tmp_path / "out", max_per_user=2)

    kept = [r["source"]["draft_id"] for r in rows["sft.jsonl"]]
    assert kept == [drafts[0], drafts[3], drafts[4]]  # the first "hello"; user 3's newest two
    assert _removed(result) == {"duplicate": {"sft": 1}, "user_cap": {"sft": 1}}


def test_dropped_candidates_are_rejected_sides_unless_empty(
    migrated_db: Database, mod: ModerationService, tmp_path: Path
) -> None:
    candidates = (
        Candidate("It ships today.", " It ships today.", -0.8, 5),
        Candidate("ok ok ok ok", " ok ok ok ok", -0.3, 4, DropReason.REPETITIVE),
        Candidate("", " ...", -2.5, 2, DropReason.EMPTY),
        Candidate("It ships.", " It ships.", -1.0, 3, DropReason.OUTRANKED),  # fine, not worse
    )
    _, draft = queue_draft(migrated_db, reply="It ships today.", candidates=candidates)
    mod.approve(OPERATOR, draft)

    _, rows = _export(migrated_db, tmp_path / "out")

    (pair,) = rows["preferences.jsonl"]
    assert pair["kind"] == "dropped_candidate"
    assert (pair["chosen"], pair["rejected"]) == ("It ships today.", "ok ok ok ok")


def test_labels_of_the_account_and_shared_ones_newest_wins(
    migrated_db: Database, mod: ModerationService, tmp_path: Path
) -> None:
    _, draft = queue_draft(migrated_db, "my parcel is late")
    mod.relabel(OPERATOR, draft, intent="question", sentiment="neutral")
    mod.relabel(OPERATOR, draft, intent="complaint")  # replaces the first correction
    _, other = queue_draft(migrated_db, "their parcel", account="bank")
    ModerationService(migrated_db, gate=AllowAll).relabel(OPERATOR, other, intent="complaint")
    with migrated_db.session() as s:
        shared = [label_store.NewLabel("you are awful", "offensive")]
        label_store.import_rows(s, account_id=None, task="safety", rows=shared, source="file:a")
        odd = [label_store.NewLabel("wire me money", "spam")]  # not one of shop's intents
        label_store.import_rows(s, account_id=None, task="intent", rows=odd, source="file:b")

    result, rows = _export(migrated_db, tmp_path / "out", intent_labels=("question", "complaint"))

    assert rows["labels-intent.jsonl"] == [
        {"text": "my parcel is late", "label": "complaint", "source": "moderator:cli:tester"}
    ]
    assert [r["label"] for r in rows["labels-sentiment.jsonl"]] == ["neutral"]
    assert rows["labels-safety.jsonl"] == [
        {"text": "you are awful", "label": "offensive", "source": "file:a"}
    ]
    assert "their parcel" not in _everything(result.out_dir)  # the bank account's
    assert _removed(result) == {"not_sent": {"replies": 1}, "unknown_label": {"labels": 1}}


def test_the_hash_is_stable_for_the_same_data_and_changes_with_it(
    migrated_db: Database, mod: ModerationService, tmp_path: Path
) -> None:
    for n in range(3):
        _, draft = queue_draft(migrated_db, f"question {n}", f"answer {n}")
        mod.approve(OPERATOR, draft)
    one, _ = _export(migrated_db, tmp_path / "one")
    two, _ = _export(migrated_db, tmp_path / "two")
    assert one.data_hash == two.data_hash
    assert all(one.files[name].read_bytes() == two.files[name].read_bytes() for name in one.files)

    _, draft = queue_draft(migrated_db, "one more", "sure")
    mod.approve(OPERATOR, draft)
    three, _ = _export(migrated_db, tmp_path / "three")
    assert three.data_hash != one.data_hash and three.counts["sft.jsonl"] == 4

    with pytest.raises(InputError, match="not empty; choose a new --out folder"):
        _export(migrated_db, tmp_path / "one")
    with pytest.raises(NotFoundError, match="no account 'nobody'"):
        export_account(migrated_db, SETTINGS, "nobody", tmp_path / "four", gate=StricterGate())
    assert not (tmp_path / "four").exists() and not (tmp_path / ".four.partial").exists()


def test_only_reviewed_replies_teach_and_an_edited_fallback_does(
    migrated_db: Database, mod: ModerationService, tmp_path: Path
) -> None:
    _, auto = queue_draft(migrated_db, "open on sunday?", "AUTO TEXT", chat_id="600")
    mod.approve(OPERATOR, auto)
    with migrated_db.session() as s:  # as the pipeline records an auto-sent reply
        s.execute(
            update(m.ModerationAction)
            .where(m.ModerationAction.draft_id == auto)
            .values(action=m.ModerationKind.AUTO_SEND)
        )
    _, fallback = queue_draft(migrated_db, "parcel lost?", "FALLBACK TEXT", fallback_used=True)
    mod.edit(OPERATOR, fallback, "Sorry! Send us the tracking number and we will look.")

    result, rows = _export(migrated_db, tmp_path / "out")

    (sft,) = rows["sft.jsonl"]
    assert sft["messages"][-1]["text"] == "Sorry! Send us the tracking number and we will look."
    assert rows.get("preferences.jsonl", []) == []  # the canned text is no negative
    assert "AUTO TEXT" not in _everything(result.out_dir)
    assert _removed(result) == {"not_reviewed": {"replies": 1}}


def test_the_export_judges_drafts_under_the_accounts_rules_of_today(
    migrated_db: Database, mod: ModerationService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A word the account blocklisted after a reply was approved keeps that reply out."""
    config = tmp_path / "autoreply.toml"
    config.write_text(
        '[[accounts]]\nname = "shop"\nplatform = "console"\n\n'
        '[accounts.safety]\nblocklist = ["megacorp"]\n'
    )
    monkeypatch.setenv("AUTOREPLY_CONFIG", str(config))
    _, fine = queue_draft(migrated_db, "hi", "Hello! How can I help?")
    _, rival = queue_draft(migrated_db, "anything cheaper?", "Try MegaCorp, they are cheaper.")
    for draft in (fine, rival):
        mod.approve(OPERATOR, draft)

    result = export_account(migrated_db, load_settings(), "shop", tmp_path / "out")
    rows = [json.loads(line) for line in result.files["sft.jsonl"].read_text().splitlines()]
    assert [r["source"]["draft_id"] for r in rows] == [fine]
    assert _removed(result) == {"gate_today": {"replies": 1}}
