"""Label tasks and their values: what a moderator's correction or an imported file may say.

Pure functions over plain values. Intent labels are per account (its classifier's labels);
sentiment labels are the `Sentiment` values; safety labels are the keys of the
`safety_label_verdicts` setting (the safety head's labels). A label that is not valid for its
task is refused with the list of valid ones, so a typo never becomes training data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from bot.domain import Sentiment
from bot.errors import InputError

TASKS: Final = ("intent", "sentiment", "safety")
SENTIMENTS: Final = tuple(s.value for s in Sentiment)
# What a moderator may correct on a queued message (safety labels come from files).
CORRECTABLE: Final = ("intent", "sentiment")
MAX_REPORTED = 5  # bad lines named in one import error


def check_task(task: str) -> str:
    name = task.strip().lower()
    if name not in TASKS:
        raise InputError(f"unknown label task {task!r}; use one of: {', '.join(TASKS)}")
    return name


def valid_labels(
    task: str, *, intent_labels: Sequence[str], safety_labels: Sequence[str] = ()
) -> tuple[str, ...]:
    """The labels `task` allows: the account's intents, the sentiments, or the safety labels."""
    if task == "intent":
        return tuple(intent_labels)
    if task == "sentiment":
        return SENTIMENTS
    return tuple(safety_labels)


def check_label(
    task: str,
    label: object,
    *,
    intent_labels: Sequence[str],
    safety_labels: Sequence[str] = (),
    where: str = "",
) -> str:
    """`label`, lower-cased, if `task` allows it; else InputError naming the valid labels.
    `where` says which account or file the labels belong to, for the message."""
    allowed = valid_labels(task, intent_labels=intent_labels, safety_labels=safety_labels)
    name = label.strip().lower() if isinstance(label, str) else ""
    if name not in allowed:
        hint = {
            "intent": "or add it to the account's intent_labels",
            "sentiment": "",
            "safety": "or add it to safety_label_verdicts in the config",
        }[task]
        shown = repr(label) if isinstance(label, str) else f"{label!r} (not a string)"
        scope = f" for {where}" if where else ""
        raise InputError(
            f"{shown} is not a valid {task} label{scope}; use one of: {', '.join(allowed)}"
            + (f" ({hint})" if hint else "")
        )
    return name


def parse_assignments(args: str) -> dict[str, str]:
    """`intent=complaint sentiment=negative` -> {"intent": "complaint", "sentiment": ...}.

    Only the correctable tasks; each at most once. Values are checked later, against the
    draft's account."""
    found: dict[str, str] = {}
    for word in args.split():
        task, sep, value = word.partition("=")
        task = task.strip().lower()
        if not sep or task not in CORRECTABLE or not value.strip():
            raise InputError(
                f"cannot read {word!r}; write the labels as intent=LABEL and/or sentiment=LABEL"
            )
        if task in found:
            raise InputError(f"{task} is given twice; give each label once")
        found[task] = value.strip()
    return found


def corrections(intent: str | None, sentiment: str | None) -> dict[str, str]:
    """The labels a correction sets, in a fixed order; InputError when there are none."""
    given = {"intent": intent, "sentiment": sentiment}
    found = {task: value for task, value in given.items() if value is not None}
    if not found:
        raise InputError("give a label to set: --intent LABEL and/or --sentiment LABEL")
    return found


def note(labels: Mapping[str, str]) -> str:
    """`intent=complaint sentiment=negative`: the audit note of a correction."""
    return " ".join(f"{task}={label}" for task, label in labels.items())


def read_jsonl(
    lines: Iterable[str],
    task: str,
    *,
    intent_labels: Sequence[str],
    safety_labels: Sequence[str] = (),
    name: str = "the file",
) -> list[tuple[str, str]]:
    """(text, label) pairs from JSON lines `{"text": ..., "label": ...}`; blank lines are
    skipped. Every line is checked before any is used: InputError lists the first bad lines
    by number, so a file is imported whole or not at all."""
    rows: list[tuple[str, str]] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(_label_line(line, task, intent_labels, safety_labels))
        except InputError as exc:
            problems.append(f"{name} line {number}: {exc}")
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise InputError(
            "; ".join(problems[:MAX_REPORTED]) + more + "; fix these lines and import again "
            "(nothing was imported)"
        )
    if not rows:
        raise InputError(f"{name} has no labelled lines; write one JSON object per line")
    return rows


def _label_line(
    line: str, task: str, intent_labels: Sequence[str], safety_labels: Sequence[str]
) -> tuple[str, str]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise InputError('not a JSON object; write {"text": "...", "label": "..."}')
    text = value.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError('"text" must be a non-empty string')
    label = check_label(
        task, value.get("label"), intent_labels=intent_labels, safety_labels=safety_labels
    )
    return text, label
