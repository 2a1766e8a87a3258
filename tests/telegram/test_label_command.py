"""Correcting a message's labels from the moderators' chat: `/label ID intent=X sentiment=Y`."""

from __future__ import annotations

import re

from sqlalchemy import select

from benchmarks.fake_bot_api import FakeBotApiClient
from benchmarks.fake_bot_api import factories as f
from bot.storage import models as m
from tests.telegram.conftest import ALICE, MALLORY, MODERATOR, MODS, StartBot


def test_a_moderator_corrects_labels_and_others_are_refused(
    api: FakeBotApiClient, start_bot: StartBot
) -> None:
    api.add_chat(f.FakeChat.private(ALICE))
    bot = start_bot(mode="review_all")
    api.inject(f.private_message(ALICE, "my parcel is late, this is the third time"))
    (card,) = api.wait_for_calls(1, chat_id=MODS.id)
    found = re.search(r"Draft #(\d+) needs review", card.text or "")
    assert found is not None
    draft = found[1]
    assert f"Wrong labels? Send /label {draft} intent=LABEL sentiment=LABEL" in (card.text or "")

    said: list[str] = []

    def command(user: f.FakeUser, args: str) -> None:
        api.inject(f.command(MODS, user, "label", args))
        calls = api.wait_for_calls(len(said) + 2, chat_id=MODS.id)  # the card, then answers
        said.append(calls[-1].text or "")

    command(MODERATOR, f"{draft} intent=complaint sentiment=negative")
    command(MALLORY, f"{draft} intent=spam")
    command(MODERATOR, f"{draft} intent=furious")
    command(MODERATOR, "intent=complaint")
    bot.stop()

    assert said[0] == f"Draft #{draft}: labels set (intent=complaint sentiment=negative)."
    assert said[1] == "Only moderators can correct labels."
    assert said[2].startswith("Nothing changed: 'furious' is not a valid intent label for ")
    assert "use one of: question, complaint" in said[2]
    assert said[3].startswith("Usage: /label ID intent=LABEL sentiment=LABEL")
    with bot.db.session() as s:
        labels = s.execute(
            select(m.LabelExample.task, m.LabelExample.label, m.LabelExample.source).order_by(
                m.LabelExample.task
            )
        ).all()
        audit = s.execute(
            select(m.ModerationAction.action, m.ModerationAction.note).order_by(
                m.ModerationAction.id
            )
        ).all()
    source = "moderator:@mo_the_mod (2001)"
    assert [tuple(r) for r in labels] == [
        ("intent", "complaint", source),
        ("sentiment", "negative", source),
    ]
    assert [(a.value, note) for a, note in audit] == [
        ("relabel", "intent=complaint sentiment=negative"),
        ("refused", "relabel: not a moderator of this account"),
    ]
    assert api.sent_messages(ALICE.id) == []  # review_all: nothing went to the user
