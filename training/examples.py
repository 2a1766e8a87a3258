"""Pure stages of the export: plain records in, JSON-ready rows out.

Every stage notes what its rules removed in a `Tally`, which the manifest reports. Texts are
scrubbed of personal data (`bot.safety.pii.scrub`) before anything compares or writes them, so
deduplication and the safety gate see what the training data will hold.

Row formats (one JSON object per line):
- sft: {"account", "messages": [{"role": "user"|"bot", "text", "target"?}, ...], "source"}
  where the last message is the reply to learn ("target": true) and earlier bot turns are
  context ("target": false);
- preferences: {"account", "messages" (context ending with the user turn), "chosen",
  "rejected", "kind": "edit"|"approved_vs_rejected"|"dropped_candidate", "source"};
- labels: {"text", "label", "source"}.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.domain import DraftStatus, Role, Turn, Verdict, VerdictAction
from bot.labels import SENTIMENTS, TASKS
from bot.safety.pii import scrub
from bot.storage.drafts import DroppedCandidate
from bot.storage.training_data import LabelRecord, ReplyRecord

Row = dict[str, Any]
SENT_STATES = frozenset({DraftStatus.APPROVED, DraftStatus.EDITED, DraftStatus.SENT})

# Rule name -> what it leaves out, in the order the rules apply (for the manifest).
RULES: dict[str, str] = {
    "erased_user": "messages of users whose data was erased, and labels of their messages",
    "banned_user": "messages of users moderators banned, and labels of their messages",
    "not_sent": "drafts rejected, still queued, or whose sending failed",
    "fallback": "drafts where the fallback reply stood in for the model (unless a moderator "
    "edited it)",
    "not_reviewed": "replies sent automatically, which no moderator approved or edited",
    "verdict_not_allow": "drafts whose stored safety verdict is review or block",
    "gate_today": "examples whose message or reply the current safety gate does not allow",
    "unknown_label": "labels that are not valid for their task (or this account's intents)",
    "duplicate": "repeats of the same context and target (labels: the newest label wins)",
    "user_cap": "examples past the cap per platform user (the newest are kept)",
}


@dataclass
class Tally:
    """How many rows each rule removed, per output, and how many texts were scrubbed."""

    removed: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    scrubbed: int = 0

    def drop(self, rule: str, output: str, n: int = 1) -> None:
        assert rule in RULES, rule
        if n:
            self.removed[rule][output] += n

    def clean(self, text: str) -> str:
        cleaned = scrub(text)
        self.scrubbed += cleaned != text
        return cleaned

    def report(self) -> list[Row]:
        return [
            {"rule": rule, "what": what, "removed": dict(sorted(self.removed[rule].items()))}
            for rule, what in RULES.items()
        ]


@dataclass(frozen=True, slots=True)
class Example:
    """A reply that passed the reply rules, with its context; every text scrubbed."""

    record: ReplyRecord
    context: tuple[Turn, ...]
    inbound: str
    text: str


def screen(records: Iterable[ReplyRecord], tally: Tally) -> list[ReplyRecord]:
    """The replies that may be learned from, by their stored facts (before any context)."""
    kept = []
    for record in records:
        rule = _reply_rule(record)
        if rule is None:
            kept.append(record)
        else:
            tally.drop(rule, "replies")
    return kept


def _reply_rule(record: ReplyRecord) -> str | None:
    if record.user_erased:
        return "erased_user"
    if record.user_banned:
        return "banned_user"
    if record.status not in SENT_STATES:
        return "not_sent"
    if record.fallback_used and record.review != "edited":
        # The canned fallback is no reply to learn; a moderator's edit of it is.
        return "fallback"
    if record.review == "auto":
        # Learning from its own unreviewed output would only teach the model what it already
        # says: the targets are what moderators approved or wrote.
        return "not_reviewed"
    if record.verdict is not VerdictAction.ALLOW:
        return "verdict_not_allow"
    return None


def examples(
    records: Sequence[ReplyRecord], contexts: Mapping[int, Sequence[Turn]], tally: Tally
) -> list[Example]:
    """Scrubbed examples; `contexts` maps draft id -> the turns before its message."""
    return [
        Example(
            record,
            tuple(Turn(t.role, tally.clean(t.text)) for t in contexts.get(record.draft_id, ())),
            tally.clean(record.inbound),
            tally.clean(record.text),
        )
        for record in records
    ]


def gate_today(
    items: Sequence[Example],
    inputs: Callable[[Sequence[str]], list[Verdict]],
    drafts: Callable[[Sequence[str]], list[Verdict]],
    tally: Tally,
) -> list[Example]:
    """Keep examples whose message and reply the current gate allows (judged as exported)."""
    if not items:
        return []
    asked = inputs([item.inbound for item in items])
    replied = drafts([item.text for item in items])
    kept = []
    for item, a, r in zip(items, asked, replied, strict=True):
        if a.action is VerdictAction.ALLOW and r.action is VerdictAction.ALLOW:
            kept.append(item)
        else:
            tally.drop("gate_today", "replies")
    return kept


def _turns(item: Example) -> list[Row]:
    rows: list[Row] = []
    for turn in item.context:
        if turn.role is Role.BOT:
            rows.append({"role": "bot", "text": turn.text, "target": False})
        else:
            rows.append({"role": "user", "text": turn.text})
    rows.append({"role": "user", "text": item.inbound})
    return rows


def _source(item: Example) -> Row:
    return {
        "message_id": item.record.message_id,
        "draft_id": item.record.draft_id,
        "review": item.record.review or "unknown",
    }


def sft_rows(account: str, items: Sequence[Example], cap: int, tally: Tally) -> list[Row]:
    rows = [
        (
            item,
            {
                "account": account,
                "messages": [*_turns(item), {"role": "bot", "text": item.text, "target": True}],
                "source": _source(item),
            },
        )
        for item in items
    ]
    return _finish(rows, lambda row: _key(row["messages"]), cap, "sft", tally)


def preference_rows(
    account: str,
    items: Sequence[Example],
    rejected_drafts: Sequence[ReplyRecord],
    dropped: Sequence[DroppedCandidate],
    cap: int,
    tally: Tally,
) -> list[Row]:
    """Pairs where the reply that went out is preferred: over the model's draft it replaced
    (edit), over a rejected draft for the same message, over the candidates best-of-n dropped.
    Empty or identical rejected texts make no pair."""
    rejected: dict[int, list[str]] = defaultdict(list)
    for record in rejected_drafts:
        rejected[record.message_id].append(record.text)
    negatives: dict[int, list[str]] = defaultdict(list)
    for candidate in sorted(dropped, key=lambda d: d.draft_id):
        negatives[candidate.draft_id].append(candidate.candidate.text)
    rows: list[tuple[Example, Row]] = []
    for item in items:
        # The fallback text a moderator replaced says nothing about the model's own wording.
        edited_from = "" if item.record.fallback_used else item.record.model_text or ""
        pairs = [("edit", edited_from)]
        pairs += [("approved_vs_rejected", text) for text in rejected[item.record.message_id]]
        pairs += [("dropped_candidate", text) for text in negatives[item.record.draft_id]]
        for kind, text in pairs:
            worse = tally.clean(text) if text.strip() else ""
            if not worse.strip() or worse == item.text:
                continue
            row = {
                "account": account,
                "messages": _turns(item),
                "chosen": item.text,
                "rejected": worse,
                "kind": kind,
                "source": _source(item),
            }
            rows.append((item, row))
    return _finish(
        rows,
        lambda row: (_key(row["messages"]), row["chosen"], row["rejected"]),
        cap,
        "preferences",
        tally,
    )


def _key(messages: Sequence[Row]) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], m["text"]) for m in messages)


def _finish(
    rows: Sequence[tuple[Example, Row]],
    key: Callable[[Row], Hashable],
    cap: int,
    output: str,
    tally: Tally,
) -> list[Row]:
    """Drop repeats (the first, oldest, stays), then cap each platform user's rows, keeping
    their newest. Rows come in draft order and leave in it, so the file is deterministic."""
    seen: set[Hashable] = set()
    unique: list[tuple[Example, Row]] = []
    for item, row in rows:
        k = key(row)
        if k in seen:
            tally.drop("duplicate", output)
            continue
        seen.add(k)
        unique.append((item, row))
    per_user: Counter[int | None] = Counter()
    kept: list[Row] = []
    for item, row in reversed(unique):  # newest first
        user = item.record.user_id
        per_user[user] += 1
        if per_user[user] > cap:
            tally.drop("user_cap", output)
        else:
            kept.append(row)
    kept.reverse()
    return kept


def label_rows(
    records: Iterable[LabelRecord], intent_labels: Sequence[str], tally: Tally
) -> dict[str, list[Row]]:
    """Task -> rows, oldest first. For one (task, text) the newest label wins: a moderator's
    later correction replaces an earlier label or an imported one."""
    allowed = {"intent": set(intent_labels), "sentiment": set(SENTIMENTS)}
    newest: dict[tuple[str, str], tuple[int, Row]] = {}
    for record in records:
        if record.user_erased or record.user_banned:
            tally.drop("erased_user" if record.user_erased else "banned_user", "labels")
            continue
        known = record.task in TASKS and (
            record.task not in allowed or record.label in allowed[record.task]
        )  # safety labels are open: the verdict map sends unknown ones to review
        if not known:
            tally.drop("unknown_label", "labels")
            continue
        text = tally.clean(record.text)
        key = (record.task, text)
        if key in newest:
            tally.drop("duplicate", "labels")
        newest[key] = (record.id, {"text": text, "label": record.label, "source": record.source})
    by_task: dict[str, list[Row]] = {}
    for (task, _), (_, row) in sorted(newest.items(), key=lambda kv: kv[1][0]):
        by_task.setdefault(task, []).append(row)
    return by_task
