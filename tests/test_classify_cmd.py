"""`run_classify` in-process with fake toxicity, and the real command in a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.classify_cmd import read_lines, run_classify
from bot.config import DEFAULT_INTENTS
from tests.safety.fakes import MappedToxicity, SlowFirstToxicity

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"intent", "intent_score", "sentiment", "sentiment_score", "safety"}
HEAVY = ("torch", "transformers", "peft", "sqlalchemy", "telegram", "apscheduler")


class CountingOut(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def classify(data: bytes, **kwargs: Any) -> list[dict[str, Any]]:
    out = io.StringIO()
    kwargs.setdefault("toxicity", MappedToxicity())
    run_classify(io.BytesIO(data), out, intent_labels=DEFAULT_INTENTS, **kwargs)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_read_lines_strips_only_the_line_end() -> None:
    data = b"a\r\n\n  b \r\n\xffc\rd\nlast"
    assert list(read_lines(io.BytesIO(data))) == ["a", "", "  b ", "\ufffdc\rd", "last"]
    assert list(read_lines(io.BytesIO(b""))) == []
    assert list(read_lines(io.BytesIO(b"\n"))) == [""]


def test_rows_have_the_exact_shape_and_rounding() -> None:
    [row] = classify(b"do you ship to canada?\n")
    assert set(row) == KEYS
    assert set(row["safety"]) == {"verdict", "toxicity", "flags"}
    assert row["intent"] == "question" and row["sentiment"] == "neutral"
    for score in (row["intent_score"], row["sentiment_score"], row["safety"]["toxicity"]):
        assert isinstance(score, float) and round(score, 4) == score and 0.0 <= score <= 1.0
    assert row["safety"] == {"verdict": "allow", "toxicity": 0.01, "flags": []}


def test_blank_and_broken_lines_get_rows_in_order() -> None:
    lines = [b"hi", b"", b"\xff\xfe caf\xc3", b"you people are idiots", b"   ", b"ok"]
    rows = classify(b"\n".join(lines) + b"\n", batch_size=2)
    assert len(rows) == len(lines)
    assert [r["intent"] for r in rows] == ["greeting", "other", "other", "abuse", "other", "other"]


def test_verdicts_use_toxicity_and_flags() -> None:
    scorer = MappedToxicity({"you are a fucking idiot": 0.99, "meh": 0.6})
    rows = classify(b"you are a fucking idiot\nmeh\ncall me on +44 20 7946 0958\n", toxicity=scorer)
    assert [r["safety"] for r in rows] == [
        {"verdict": "block", "toxicity": 0.99, "flags": ["toxic", "abuse"]},  # a profanity stem
        {"verdict": "review", "toxicity": 0.6, "flags": ["toxic"]},
        {"verdict": "review", "toxicity": 0.01, "flags": ["pii_phone"]},
    ]
    assert rows[0]["intent"] == "abuse"


def test_late_toxicity_answers_keep_the_order_and_flush_per_batch() -> None:
    texts = [f"message number {i}" for i in range(7)]
    out = CountingOut()
    scorer = SlowFirstToxicity({t: i / 10 for i, t in enumerate(texts)})
    count = run_classify(
        io.BytesIO("\n".join(texts).encode()),
        out,
        intent_labels=DEFAULT_INTENTS,
        batch_size=2,
        toxicity=scorer,
    )
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == 7
    assert [r["safety"]["toxicity"] for r in rows] == [i / 10 for i in range(7)]
    assert out.flushes == 4  # one per batch of two
    assert not scorer.closed  # a scorer passed in belongs to the caller


def test_custom_labels_and_thresholds() -> None:
    labels = ("question", "other")
    out = io.StringIO()
    run_classify(
        io.BytesIO(b"follow me for free followers\nmeh"),
        out,
        intent_labels=labels,
        toxicity_review=0.2,
        toxicity_block=0.3,
        toxicity=MappedToxicity({"meh": 0.25}),
    )
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["intent"] for r in rows] == ["other", "other"]
    assert rows[1]["safety"]["verdict"] == "review"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        classify(b"x", batch_size=0)
    # With the default worker: it is killed, not waited for, when set-up fails.
    with pytest.raises(ValueError, match="'other'"):
        run_classify(io.BytesIO(b"x"), io.StringIO(), intent_labels=["question"])


# --- the real command, end to end -------------------------------------------------------------


def run_command(data: bytes, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "bot.classify_cmd", *args],
        input=data,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_command_end_to_end_without_heavy_imports() -> None:
    lines = [
        "hi",
        "",
        "where is my order #4411??",
        "\udcff",
        "you are a fucking idiot",
        "email me: jo@example.com",
        "love it 😍",
    ]
    data = b"\r\n".join(line.encode("utf-8", "surrogateescape") for line in lines)
    # PYTHONPROFILEIMPORTTIME reaches the toxicity worker too: it lists both processes' imports.
    done = run_command(data, PYTHONPROFILEIMPORTTIME="1")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rows = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(rows) == len(lines)
    assert all(set(r) == KEYS for r in rows)
    assert rows[0]["intent"] == "greeting"
    assert rows[1]["intent"] == "other"
    assert rows[4]["safety"]["verdict"] == "block"  # real alt-profanity-check score
    assert rows[5]["safety"]["flags"] == ["pii_email"]
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in done.stderr.decode().splitlines()
        if line.startswith("import time:")
    }
    assert "vaderSentiment" in imported and "sklearn" in imported  # the profile is real
    assert not imported & {"torch", "transformers"}, imported & {"torch", "transformers"}


def test_parent_process_imports_no_model_libraries() -> None:
    code = (
        "import io, sys\n"
        "from bot.classify_cmd import classify_file\n"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(b'hello\\nthanks'))\n"
        "classify_file(None, io.StringIO())\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    loaded = set(done.stdout.decode().split())
    assert "vaderSentiment" in loaded
    assert not loaded & {*HEAVY, "sklearn", "scipy", "profanity_check"}


def test_command_reads_a_file_and_reports_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"one\ntwo\n")
    done = run_command(b"", str(path))
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2
    missing = run_command(b"", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2
    assert b"error: cannot read" in missing.stderr


# --- classifier heads ---------------------------------------------------------------------------


def run_cli(data: bytes, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """`autoreply classify` itself (python -m bot), options and all."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "classify", *args],
        input=data,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def imported_modules(stderr: bytes) -> set[str]:
    return {
        line.split("|")[-1].strip().split(".")[0]
        for line in stderr.decode().splitlines()
        if line.startswith("import time:")
    }


@pytest.fixture
def heads_env(sqlite_url: str, tmp_path: Path, tiny_model_dir: Path) -> dict[str, str]:
    """A database where the default account has a sentiment and a safety head promoted (zero
    score layers: the first label, "negative" and "hate", always wins)."""
    from bot.storage import accounts as account_store
    from bot.storage.db import Database
    from bot.storage.migrate import ensure_schema
    from tests.nlp.head_helpers import promote_head

    ensure_schema(sqlite_url)
    db = Database(sqlite_url)
    adapters = tmp_path / "adapters"
    with db.session() as s:
        account_store.bind(s, "default", "console", "default")
    promote_head(db, adapters, "default", "sentiment", tiny_model_dir, SENTIMENT_LABELS)
    promote_head(db, adapters, "default", "safety", tiny_model_dir, ("hate", "neither"))
    db.dispose()
    return {
        "AUTOREPLY_DATABASE_URL": sqlite_url,
        "AUTOREPLY_ADAPTERS_DIR": str(adapters),
        "AUTOREPLY_DEVICE": "cpu",
    }


SENTIMENT_LABELS = ("negative", "neutral", "positive")
HAPPY = b"thanks so much, love it!\n"


def test_promoted_heads_change_what_classify_prints(heads_env: dict[str, str]) -> None:
    done = run_cli(HAPPY, **heads_env)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    [row] = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert row["intent"] == "praise"  # no intent head: the rules answer
    assert (row["sentiment"], row["sentiment_score"]) == ("negative", 0.3333)
    # Two labels at 0.5 each: under the default confidence (0.85) the head flags nothing.
    assert row["safety"]["label"] == "hate" and row["safety"]["verdict"] == "allow"
    assert run_cli(HAPPY, "--account", "default", **heads_env).stdout == done.stdout
    sure = run_cli(HAPPY, **heads_env, AUTOREPLY_SAFETY_HEAD_CONFIDENCE="0.5")
    [row] = [json.loads(line) for line in sure.stdout.decode().splitlines()]
    assert row["safety"]["verdict"] == "block" and "safety_hate" in row["safety"]["flags"]


def test_lexical_ignores_heads_and_imports_no_torch(heads_env: dict[str, str]) -> None:
    done = run_cli(HAPPY, "--lexical", PYTHONPROFILEIMPORTTIME="1", **heads_env)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    [row] = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert row["sentiment"] == "positive" and set(row["safety"]) == {"verdict", "toxicity", "flags"}
    assert not imported_modules(done.stderr) & {"torch", "transformers", "peft"}


def test_heads_of_another_account_leave_the_default_path_light(
    heads_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "autoreply.toml"
    config.write_text(
        '[[accounts]]\nname = "shop"\nplatform = "console"\ndefault = true\n\n'
        '[[accounts]]\nname = "default"\nplatform = "console"\n',
        encoding="utf-8",
    )
    env = {**heads_env, "AUTOREPLY_CONFIG": str(config), "PYTHONPROFILEIMPORTTIME": "1"}
    done = run_cli(HAPPY, **env)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout)["sentiment"] == "positive"  # shop has no heads
    assert not imported_modules(done.stderr) & {"torch", "sqlalchemy"}
