"""Behaviour of the lexical classifier: rules, the VADER mapping and configurable labels."""

from __future__ import annotations

import math

import pytest

from bot.config import DEFAULT_INTENTS
from bot.domain import Analysis, Sentiment
from bot.nlp.classify import Classifier, LexicalClassifier, sentiment_distribution
from bot.nlp.intent_rules import Cue, IntentRules


@pytest.fixture(scope="module")
def clf() -> LexicalClassifier:
    return LexicalClassifier(DEFAULT_INTENTS)


def intent_probs(analysis: Analysis) -> dict[str, float]:
    return {k[7:]: v for k, v in analysis.scores.items() if k.startswith("intent:")}


def sentiment_probs(analysis: Analysis) -> dict[str, float]:
    return {k[10:]: v for k, v in analysis.scores.items() if k.startswith("sentiment:")}


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("do you ship to canada?", "question"),
        ("How long does delivery take to Ireland", "question"),
        ("can you cancel my order please", "request"),
        ("pls DM me, need to change my address", "request"),
        ("my parcel arrived broken. terrible service", "complaint"),
        ("Still waiting on my refund, 3 weeks now", "complaint"),
        ("love the new hoodie, thank you!! 😍", "praise"),
        ("hi", "greeting"),
        ("Good morning @ShopCo ☀️", "greeting"),
        ("follow me for FREE followers, link in bio 🔥", "spam"),
        ("earn $500/day from home, DM me for details", "spam"),
        ("you people are absolute idiots", "abuse"),
        ("lol", "other"),
        ("", "other"),
    ],
)
def test_clear_cases(clf: LexicalClassifier, text: str, intent: str) -> None:
    analysis = clf.classify(text)
    assert analysis.intent == intent, intent_probs(analysis)
    assert analysis.model == "lexical-v1"


def test_distributions_sum_to_one_and_scores_are_their_argmax(clf: LexicalClassifier) -> None:
    for analysis in clf.classify_many(["where is my order??", "ugh", "I LOVE IT", "hi 👋", ""]):
        intents, sentiments = intent_probs(analysis), sentiment_probs(analysis)
        assert set(intents) == set(DEFAULT_INTENTS)
        assert set(sentiments) == {s.value for s in Sentiment}
        assert math.isclose(sum(intents.values()), 1.0)
        assert math.isclose(sum(sentiments.values()), 1.0)
        assert analysis.intent_score == max(intents.values()) == intents[analysis.intent]
        assert analysis.sentiment_score == max(sentiments.values())
        assert analysis.sentiment_score == sentiments[analysis.sentiment.value]
        assert all(0.0 < p < 1.0 for p in [*intents.values(), *sentiments.values()])


def test_scores_vary_with_the_evidence(clf: LexicalClassifier) -> None:
    weak, strong = clf.classify_many(["is it in stock", "do you ship to canada? how long?"])
    assert weak.intent == strong.intent == "question"
    assert strong.intent_score > weak.intent_score
    texts = ["ok", "nice", "this is great", "best shop ever, love you all!!! 😍"]
    sentiment_scores = [a.sentiment_score for a in clf.classify_many(texts)]
    assert len(set(sentiment_scores)) == len(texts)


@pytest.mark.parametrize(
    ("compound", "label"),
    [(0.05, "positive"), (0.0499, "neutral"), (-0.0499, "neutral"), (-0.05, "negative")],
)
def test_vader_cut_offs(compound: float, label: str) -> None:
    chosen, probs = sentiment_distribution(
        {"neg": 0.2, "neu": 0.6, "pos": 0.2, "compound": compound}
    )
    assert chosen.value == label
    assert max(probs, key=probs.__getitem__) is chosen


def test_sentiment_confidence_grows_with_the_compound() -> None:
    def p(compound: float, neu: float = 0.5) -> float:
        pos = (1 - neu) if compound > 0 else 0.0
        label, probs = sentiment_distribution(
            {"neg": 1 - neu - pos, "neu": neu, "pos": pos, "compound": compound}
        )
        return probs[label]

    assert p(0.05) == pytest.approx(0.5)  # on the cut-off: a coin flip with neutral
    assert p(0.1) < p(0.3) < p(0.6) < p(0.95) <= 0.95
    assert p(-0.1) < p(-0.6)
    # No polar words at all is confident neutral; balanced praise and blame is not.
    assert p(0.0, neu=1.0) == pytest.approx(0.95)
    assert p(0.0, neu=0.4) < 0.75


def test_dropped_label_is_never_predicted_and_mass_is_renormalised(
    clf: LexicalClassifier,
) -> None:
    labels = [lab for lab in DEFAULT_INTENTS if lab != "spam"]
    small = LexicalClassifier(labels)
    text = "follow me for free followers!!! link in bio"
    full, reduced = clf.classify(text), small.classify(text)
    assert full.intent == "spam"
    assert reduced.intent != "spam" and "intent:spam" not in reduced.scores
    kept = 1.0 - full.scores["intent:spam"]
    for lab in labels:
        assert reduced.scores[f"intent:{lab}"] == pytest.approx(full.scores[f"intent:{lab}"] / kept)


def test_custom_labels_and_rules() -> None:
    rules = IntentRules(cues={"shipping": (Cue(r"\b(?:ship|deliver)\w*", 3.0),)})
    clf = LexicalClassifier(["shipping", "refund", "other"], rules)
    ship, refund, other = clf.classify_many(["Do you deliver to Spain?", "refund pls", "hey"])
    assert ship.intent == "shipping"
    assert refund.intent == "other"  # a label without cues gets no evidence
    assert other.intent == "other"
    assert set(intent_probs(ship)) == {"shipping", "refund", "other"}


@pytest.mark.parametrize(
    ("labels", "match"),
    [(["question", "praise"], "must include 'other'"), (["other", "other"], "duplicates")],
)
def test_bad_label_sets_are_refused(labels: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LexicalClassifier(labels)


@pytest.mark.parametrize(
    ("cue", "match"), [(Cue("(unclosed", 1.0), "not a regex"), (Cue("Hello", 1.0), "lower case")]
)
def test_bad_cues_are_refused(cue: Cue, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IntentRules(cues={"greeting": (cue,)})
    with pytest.raises(ValueError, match="fallback"):
        IntentRules(cues={"other": ()})


def test_toxicity_raises_abuse(clf: LexicalClassifier) -> None:
    text = "this is shit, where is my stuff"
    [before] = clf.classify_many([text])
    calm, toxic = clf.with_toxicity([before, before], [0.3, 0.99])
    assert calm == before  # below 0.5 the model's score is no evidence
    assert toxic.scores["intent:abuse"] > before.scores["intent:abuse"]
    assert toxic.intent == "abuse"
    assert math.isclose(sum(intent_probs(toxic).values()), 1.0)
    no_abuse = LexicalClassifier(["complaint", "other"])
    [analysis] = no_abuse.classify_many([text])
    assert no_abuse.with_toxicity([analysis], [1.0]) == [analysis]


def test_fakes_can_stand_in_for_the_interface() -> None:
    class Constant(Classifier):
        name = "constant"

        def classify_many(self, texts: list[str]) -> list[Analysis]:  # type: ignore[override]
            return [Analysis("other", 1.0, Sentiment.NEUTRAL, 1.0) for _ in texts]

    fake = Constant()
    assert fake.classify("x").intent == "other"
    assert fake.with_toxicity(fake.classify_many(["a"]), [1.0])[0].intent == "other"
