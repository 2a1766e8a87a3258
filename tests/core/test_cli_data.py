"""`autoreply labels import`, `queue label` and `export` as a user runs them: a labels file
goes in whole or not at all (on both backends), and importing it again adds nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from bot.storage import models as m
from bot.storage.db import Database
from bot.storage.migrate import ensure_schema
from tests.fakes import queue_draft


def _autoreply(db_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "AUTOREPLY_DATABASE_URL": db_url},
        cwd=cwd,
        timeout=120,
    )


def _rows(db_url: str) -> list[tuple[int | None, str, str, str, str]]:
    ensure_schema(db_url)  # a refused import never opened the database
    db = Database(db_url)
    try:
        with db.session() as s:
            rows = s.execute(
                select(
                    m.LabelExample.account_id,
                    m.LabelExample.task,
                    m.LabelExample.text,
                    m.LabelExample.label,
                    m.LabelExample.source,
                ).order_by(m.LabelExample.id)
            )
            return [(a, b, c, d, e) for a, b, c, d, e in rows]
    finally:
        db.dispose()


def test_a_labels_file_is_imported_whole_or_not_at_all(db_url: str, tmp_path: Path) -> None:
    labels = tmp_path / "intents.jsonl"
    good = '{"text": "where is my parcel?", "label": "question"}\n'
    labels.write_text(
        good + "\n"  # blank lines are fine
        '{"text": "refund me now", "label": "angry"}\n'
        "not json\n"
        '{"label": "praise"}\n',
        encoding="utf-8",
    )

    refused = _autoreply(db_url, tmp_path, "labels", "import", str(labels), "--task", "intent")

    assert refused.returncode == 2, refused.stderr
    assert "intents.jsonl line 3: 'angry' is not a valid intent label" in refused.stderr
    assert "use one of: question, complaint" in refused.stderr
    assert "line 4: not valid JSON" in refused.stderr
    assert 'line 5: "text" must be a non-empty string' in refused.stderr
    assert "nothing was imported" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _rows(db_url) == []  # the good first line was not written either

    labels.write_text(good + '{"text": "refund me now", "label": "Complaint"}\n', encoding="utf-8")
    done = _autoreply(db_url, tmp_path, "labels", "import", str(labels), "--task", "intent")
    assert done.returncode == 0, done.stderr
    assert "imported 2 intent labels for every account (0 already there)" in done.stdout
    again = _autoreply(db_url, tmp_path, "labels", "import", str(labels), "--task", "intent")
    assert "imported 0 intent labels for every account (2 already there)" in again.stdout
    assert _rows(db_url) == [
        (None, "intent", "where is my parcel?", "question", "file:intents.jsonl"),
        (None, "intent", "refund me now", "complaint", "file:intents.jsonl"),
    ]


def test_tasks_accounts_and_safety_labels_are_checked(db_url: str, tmp_path: Path) -> None:
    labels = tmp_path / "safety.jsonl"
    labels.write_text('{"text": "you are awful", "label": "offensive"}\n', encoding="utf-8")

    task = _autoreply(db_url, tmp_path, "labels", "import", str(labels), "--task", "mood")
    assert task.returncode == 2 and "unknown label task 'mood'" in task.stderr
    nobody = _autoreply(
        db_url, tmp_path, "labels", "import", str(labels), "--task", "safety", "--account", "x"
    )
    assert nobody.returncode == 1 and "there is no account named 'x'" in nobody.stderr
    wrong = _autoreply(db_url, tmp_path, "labels", "import", str(labels), "--task", "sentiment")
    assert "use one of: negative, neutral, positive" in wrong.stderr

    done = _autoreply(db_url, tmp_path, "labels", "import", str(labels), "--task", "safety")
    assert done.returncode == 0, done.stderr
    assert [row[3] for row in _rows(db_url)] == ["offensive"]


def test_queue_label_and_export_from_the_command_line(sqlite_url: str, tmp_path: Path) -> None:
    ensure_schema(sqlite_url)
    db = Database(sqlite_url)
    try:
        _, draft = queue_draft(db, "mail me at ann@example.com, it never came", account="default")
    finally:
        db.dispose()

    label = _autoreply(sqlite_url, tmp_path, "queue", "label", str(draft), "--intent", "complaint")
    assert label.returncode == 0, label.stderr
    assert label.stdout.strip() == f"draft #{draft}: labels set (intent=complaint)"
    wrong = _autoreply(sqlite_url, tmp_path, "queue", "label", str(draft), "--sentiment", "sad")
    assert wrong.returncode == 2 and "use one of: negative, neutral, positive" in wrong.stderr

    done = _autoreply(sqlite_url, tmp_path, "export", "--out", "data")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("default: 0 sft, 0 preferences, 1 labels-intent -> data/default")
    exported = (tmp_path / "data" / "default" / "labels-intent.jsonl").read_text(encoding="utf-8")
    assert "<email>" in exported and "ann@" not in exported
    again = _autoreply(sqlite_url, tmp_path, "export", "--out", "data")
    assert again.returncode == 2 and "choose a new --out folder" in again.stderr
    since = _autoreply(sqlite_url, tmp_path, "export", "--since", "soon")
    assert since.returncode == 2 and "write it as YYYY-MM-DD" in since.stderr
