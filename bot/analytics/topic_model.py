"""What people write about: NMF topics over TF-IDF, fitted on one window of messages and
compared with the window before it. Pure: texts in, `TopicFit` out (deterministic).

- Vocabulary: words of two letters or more (numbers are left out: order numbers and phone
  digits are not topics), English stop words removed, sublinear term frequency. A word must
  appear in 2 messages (1 below MIN_DF2_MESSAGES, where 2 would leave too few words) and in at
  most 90% of them.
- Number of topics: round(sqrt(n) / 2), at least 2, at most `max_topics` and fewer than the
  vocabulary: 60 messages give 4 topics, 400 give 10 before the cap.
- Each message belongs to its strongest topic; a message with none of the vocabulary's words
  belongs to none. A topic's examples are its members with the largest weight on it, short
  ones preferred (at most 3, distinct texts).
- Trend: the fitted model reads the previous window's messages (`transform`), so both windows
  are measured against the same topics; the shares of the two windows are compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and scikit-learn load when a fit runs, not when the service starts
    import numpy as np

MIN_MESSAGES = 10  # fewer than this is not a week of topics, just a few messages
MIN_DF2_MESSAGES = 40
TOP_WORDS = 8
EXAMPLES = 3
EXAMPLE_MAX_CHARS = 200  # longer messages are poor examples and hold more personal detail
TOKENS = r"(?u)\b[^\W\d_]{2,}\b"
RANDOM_STATE = 0


@dataclass(frozen=True, slots=True)
class TopicText:
    """A message to fit on: its id (examples are stored as ids, never as text) and text."""

    message_id: int
    text: str


@dataclass(frozen=True, slots=True)
class Topic:
    words: tuple[str, ...]  # strongest first
    size: int  # messages of this window whose strongest topic this is
    previous_size: int  # the same, among the previous window's messages
    example_ids: tuple[int, ...]

    def share(self, messages: int) -> float:
        return self.size / messages if messages else 0.0


@dataclass(frozen=True, slots=True)
class TopicFit:
    messages: int  # in this window
    previous_messages: int  # in the window before
    topics: tuple[Topic, ...]  # largest first
    assignments: tuple[int, ...]  # per message of this window: its topic's index, or -1


def topic_count(messages: int, cap: int) -> int:
    """The simple rule: round(sqrt(n) / 2), between 2 and `cap`."""
    return max(2, min(cap, round(math.sqrt(messages) / 2)))


def fit_topics(
    current: Sequence[TopicText], previous: Sequence[TopicText] = (), max_topics: int = 8
) -> TopicFit:
    """Fit topics on `current` and measure the same topics on `previous`."""
    import numpy as np
    from sklearn.decomposition import NMF
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(current) < MIN_MESSAGES:
        return TopicFit(len(current), len(previous), (), (-1,) * len(current))
    vectorizer = TfidfVectorizer(
        stop_words="english",
        token_pattern=TOKENS,
        lowercase=True,
        sublinear_tf=True,
        min_df=2 if len(current) >= MIN_DF2_MESSAGES else 1,
        max_df=0.9,
    )
    try:
        matrix = vectorizer.fit_transform([t.text for t in current])
    except ValueError:  # no word survived (all stop words or numbers): nothing to say
        return TopicFit(len(current), len(previous), (), (-1,) * len(current))
    vocabulary = vectorizer.get_feature_names_out()
    k = min(topic_count(len(current), max_topics), len(vocabulary) - 1)
    if k < 2:
        return TopicFit(len(current), len(previous), (), (-1,) * len(current))
    model = NMF(n_components=k, init="nndsvda", random_state=RANDOM_STATE, max_iter=500)
    weights = model.fit_transform(matrix)
    assigned = _strongest(weights)
    previous_assigned = (
        _strongest(model.transform(vectorizer.transform([t.text for t in previous])))
        if previous
        else np.empty(0, dtype=int)
    )
    topics: list[tuple[int, Topic]] = []
    for index in range(k):
        members = np.flatnonzero(assigned == index)
        if not len(members):
            continue
        order = np.argsort(-model.components_[index])[:TOP_WORDS]
        words = tuple(str(vocabulary[i]) for i in order if model.components_[index, i] > 0)
        topics.append(
            (
                index,
                Topic(
                    words=words,
                    size=len(members),
                    previous_size=int(np.sum(previous_assigned == index)),
                    example_ids=_examples(current, members, weights[:, index]),
                ),
            )
        )
    topics.sort(key=lambda pair: (-pair[1].size, pair[0]))
    renumber = {old: new for new, (old, _) in enumerate(topics)}
    return TopicFit(
        messages=len(current),
        previous_messages=len(previous),
        topics=tuple(topic for _, topic in topics),
        assignments=tuple(renumber.get(int(a), -1) for a in assigned),
    )


def _strongest(weights: np.ndarray) -> np.ndarray:
    """Each row's strongest topic, or -1 for a row without any weight."""
    best: np.ndarray = weights.argmax(axis=1)
    best[weights.max(axis=1) <= 0] = -1
    return best


def _examples(
    texts: Sequence[TopicText], members: np.ndarray, weight: np.ndarray
) -> tuple[int, ...]:
    """The members that load most on the topic, short ones first among equals, distinct texts."""
    ranked = sorted(
        members,
        key=lambda i: (len(texts[i].text) > EXAMPLE_MAX_CHARS, -float(weight[i]), int(i)),
    )
    chosen: list[int] = []
    seen: set[str] = set()
    for i in ranked:
        key = " ".join(texts[i].text.lower().split())
        if key in seen or len(texts[i].text) > EXAMPLE_MAX_CHARS:
            continue
        seen.add(key)
        chosen.append(texts[i].message_id)
        if len(chosen) == EXAMPLES:
            break
    return tuple(chosen)
