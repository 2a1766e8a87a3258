"""Best-of-n candidates on both backends: stored with their draft, shown one draft at a time,
gone with their draft, and read back as negatives for the learning loop."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from bot.domain import Candidate, Draft, DropReason, Incoming, Verdict, VerdictAction
from bot.errors import StorageError
from bot.storage import drafts as draft_store
from bot.storage import history
from bot.storage import models as m
from bot.storage.db import Database

BEST = Candidate("Sorry about that! It ships today.", " Sorry about that! It ships today.", -0.8, 9)
SECOND = Candidate("It ships today.", " It ships today.", -1.1, 5, DropReason.OUTRANKED)
LOOP = Candidate("ok ok ok ok", " ok ok ok ok", -0.3, 4, DropReason.REPETITIVE)
BLOCKED = Candidate("you idiot", " you idiot", -1.9, 3, DropReason.BLOCKED)
NOTHING = Candidate("", " ...", -2.5, 2, DropReason.EMPTY)


def _draft(*candidates: Candidate) -> Draft:
    text = candidates[0].text if candidates else "It ships today."
    return Draft(text=text, raw=text, fallback_used=False, model="tiny", candidates=candidates)


def _create(s: Session, draft: Draft, *, account: str = "shop", n: int = 1) -> int:
    stored = history.ingest(
        s,
        Incoming(
            platform="telegram",
            account=account,
            chat_id="500",
            message_id=f"{account}-{n}",
            user_id="9",
            text=f"where is order {n}?",
        ),
    )
    return draft_store.create_draft(
        s,
        message_id=stored.message_id,
        draft=draft,
        verdict=Verdict(VerdictAction.ALLOW, 0.0),
        status=m.DraftStatus.QUEUED,
    )


def _store(db: Database, draft: Draft, *, account: str = "shop", n: int = 1) -> int:
    with db.session() as s:
        return _create(s, draft, account=account, n=n)


def _rows(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(m.DraftCandidate)) or 0


def test_candidates_are_stored_best_first_and_shown_with_one_draft(migrated_db: Database) -> None:
    draft_id = _store(migrated_db, _draft(BEST, SECOND, LOOP, NOTHING))

    with migrated_db.session() as s:
        assert draft_store.candidates(s, draft_id) == (BEST, SECOND, LOOP, NOTHING)
        item = draft_store.get_item(s, draft_id)
        (listed,) = draft_store.list_drafts(s, (m.DraftStatus.QUEUED,))
    assert item is not None and item.candidates == (BEST, SECOND, LOOP, NOTHING)
    assert listed.draft_id == draft_id and listed.candidates == ()  # the list stays cheap


def test_a_single_sample_draft_has_no_candidate_rows(migrated_db: Database) -> None:
    draft_id = _store(migrated_db, _draft())

    with migrated_db.session() as s:
        assert draft_store.candidates(s, draft_id) == ()
        item = draft_store.get_item(s, draft_id)
    assert item is not None and item.candidates == ()
    assert _rows(migrated_db) == 0


def test_the_card_built_in_the_same_transaction_sees_them(migrated_db: Database) -> None:
    with migrated_db.session() as s:
        draft_id = _create(s, _draft(BEST, LOOP))
        item = draft_store.get_item(s, draft_id)  # as the pipeline's _enqueue_card does
    assert item is not None and item.candidates == (BEST, LOOP)


def test_candidates_are_written_in_the_drafts_transaction(migrated_db: Database) -> None:
    with pytest.raises(RuntimeError), migrated_db.session() as s:
        _create(s, _draft(BEST, SECOND))
        raise RuntimeError("the pipeline failed before its commit")
    assert _rows(migrated_db) == 0


def test_candidates_go_with_their_draft(migrated_db: Database) -> None:
    kept = _store(migrated_db, _draft(BEST, LOOP), n=1)
    gone = _store(migrated_db, _draft(BEST, SECOND, BLOCKED), n=2)

    with migrated_db.session() as s:
        s.execute(delete(m.ReplyDraft).where(m.ReplyDraft.id == gone))
    with migrated_db.session() as s:
        assert draft_store.candidates(s, gone) == ()
        assert draft_store.candidates(s, kept) == (BEST, LOOP)
    assert _rows(migrated_db) == 2


def test_scores_keep_minus_infinity_and_nan_becomes_the_worst(migrated_db: Database) -> None:
    never = Candidate("", "", -math.inf, 0, DropReason.EMPTY)
    broken = Candidate("hm", "hm", math.nan, 1, DropReason.GIBBERISH)
    draft_id = _store(migrated_db, _draft(BEST, never, broken))

    with migrated_db.session() as s:
        scores = [c.score for c in draft_store.candidates(s, draft_id)]
    assert scores == [BEST.score, -math.inf, -math.inf]


def test_an_unknown_drop_reason_is_refused_when_read(migrated_db: Database) -> None:
    # No CHECK on the column (a new reason needs no migration), so the reader validates.
    draft_id = _store(migrated_db, _draft(BEST, LOOP))
    with migrated_db.session() as s:
        s.execute(
            update(m.DraftCandidate).where(m.DraftCandidate.rank == 1).values(dropped="too_polite")
        )
    with migrated_db.session() as s, pytest.raises(StorageError, match=r"'too_polite'.*newer"):
        draft_store.candidates(s, draft_id)


def test_dropped_candidates_are_negatives_with_their_message(migrated_db: Database) -> None:
    first = _store(migrated_db, _draft(BEST, SECOND, LOOP), account="shop", n=1)
    second = _store(migrated_db, _draft(BEST, BLOCKED, NOTHING), account="shop", n=2)
    other = _store(migrated_db, _draft(BEST, LOOP), account="bank", n=3)
    with migrated_db.session() as s:
        shop_id = s.scalar(select(m.Account.id).where(m.Account.name == "shop"))

        everything = draft_store.dropped_candidates(s)
        shop = draft_store.dropped_candidates(s, account_id=shop_id)
        latest = draft_store.dropped_candidates(s, limit=1)
        outranked = draft_store.dropped_candidates(s, reasons=[DropReason.OUTRANKED])

    # Newest first; neither the used candidate nor the merely outranked one is a negative.
    assert [(d.draft_id, d.candidate) for d in everything] == [
        (other, LOOP),
        (second, NOTHING),
        (second, BLOCKED),
        (first, LOOP),
    ]
    assert [d.message_text for d in everything] == [
        "where is order 3?",
        "where is order 2?",
        "where is order 2?",
        "where is order 1?",
    ]
    assert [(d.draft_id, d.candidate) for d in shop] == [
        (second, NOTHING),
        (second, BLOCKED),
        (first, LOOP),
    ]
    assert [(d.draft_id, d.candidate) for d in latest] == [(other, LOOP)]
    assert [(d.draft_id, d.candidate) for d in outranked] == [(first, SECOND)]
    with migrated_db.session() as s:
        message_id = s.scalar(select(m.ReplyDraft.message_id).where(m.ReplyDraft.id == first))
    assert everything[-1].message_id == message_id
