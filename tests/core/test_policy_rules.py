"""The decision policy's pure parts: rules by intent and sentiment, confidence, language, business
hours, the handoff detector, and the `[accounts.policy]` table."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from pydantic import ValidationError

from bot.account_tables import AccountTable
from bot.accounts import load_accounts
from bot.business_hours import BusinessHours, OutsideHours, parse_days
from bot.config import Settings
from bot.domain import Analysis, DecisionAction, Mode, Sentiment, Verdict, VerdictAction
from bot.errors import ConfigError
from bot.handoff import asks_for_person
from bot.policy import DEFAULT_RULES, Policy, PolicyRule, after_draft, screen

ALLOW = Verdict(VerdictAction.ALLOW, 0.01)


def _analysis(
    intent: str = "question",
    sentiment: Sentiment = Sentiment.NEUTRAL,
    intent_score: float = 0.9,
    sentiment_score: float = 0.9,
) -> Analysis:
    return Analysis(intent, intent_score, sentiment, sentiment_score)


def _after(analysis: Analysis, policy: Policy | None = None, **kw: object) -> DecisionAction:
    ruling = after_draft(
        mode=kw.pop("mode", Mode.AUTO),  # type: ignore[arg-type]
        input_verdict=kw.pop("input_verdict", ALLOW),  # type: ignore[arg-type]
        draft_verdict=kw.pop("draft_verdict", ALLOW),  # type: ignore[arg-type]
        policy=policy or Policy(),
        analysis=analysis,
        open_now=kw.pop("open_now", True),  # type: ignore[arg-type]
    )
    return ruling.action


def test_default_rules_review_a_negative_complaint_and_ignore_spam_and_abuse() -> None:
    assert _after(_analysis("complaint", Sentiment.NEGATIVE)) is DecisionAction.REVIEW
    assert _after(_analysis("complaint", Sentiment.NEUTRAL)) is DecisionAction.AUTO
    spam = screen(Policy(), _analysis("spam"))
    assert spam is not None and spam.action is DecisionAction.IGNORE and not spam.strike
    abuse = screen(Policy(), _analysis("abuse", Sentiment.NEGATIVE))
    assert abuse is not None and abuse.strike and "counted against the user" in abuse.reason
    assert screen(Policy(), _analysis("question")) is None


def test_the_first_matching_rule_wins_and_rules_replace_the_defaults() -> None:
    policy = Policy(
        rules=(
            PolicyRule(DecisionAction.AUTO, "complaint", Sentiment.NEGATIVE),
            PolicyRule(DecisionAction.REVIEW, "complaint"),
        )
    )
    assert _after(_analysis("complaint", Sentiment.NEGATIVE), policy) is DecisionAction.AUTO
    assert _after(_analysis("complaint", Sentiment.POSITIVE), policy) is DecisionAction.REVIEW
    assert screen(policy, _analysis("spam")) is None  # the default spam rule is gone


def test_an_unsure_classifier_sends_to_review() -> None:
    policy = Policy(min_confidence=0.5)
    ruling = after_draft(
        mode=Mode.AUTO,
        input_verdict=ALLOW,
        draft_verdict=ALLOW,
        policy=policy,
        analysis=_analysis(intent_score=0.31),
    )
    assert ruling.action is DecisionAction.REVIEW
    assert ruling.reason == "classifier unsure (intent 0.31 < 0.50)"
    assert _after(_analysis(sentiment_score=0.49), policy) is DecisionAction.REVIEW
    assert _after(_analysis(intent_score=0.5, sentiment_score=0.5), policy) is DecisionAction.AUTO


def test_any_gate_flag_and_an_uncovered_language_send_to_review() -> None:
    foreign = Verdict(VerdictAction.ALLOW, 0.0, ("non_english",))
    ruling = after_draft(mode=Mode.AUTO, input_verdict=foreign, draft_verdict=ALLOW)
    assert ruling.action is DecisionAction.REVIEW and "language" in ruling.reason
    flagged_but_allowed = Verdict(VerdictAction.ALLOW, 0.0, ("pii_email",))
    assert _after(_analysis(), draft_verdict=flagged_but_allowed) is DecisionAction.REVIEW


def test_a_block_is_never_auto_even_when_a_rule_says_auto() -> None:
    policy = Policy(rules=(PolicyRule(DecisionAction.AUTO, "question"),))
    block = Verdict(VerdictAction.BLOCK, 0.99, ("toxic",))
    assert _after(_analysis(), policy, draft_verdict=block) is DecisionAction.REVIEW


HOURS = BusinessHours(
    time_zone="Europe/Berlin",
    days=parse_days("mon-fri"),
    opens=time(9),
    closes=time(17),
    outside=OutsideHours.REVIEW,
)
# Wednesday 3 December 2025; Berlin is UTC+1 in winter.
WED_NOON = datetime(2025, 12, 3, 11, 0, tzinfo=UTC)  # 12:00 in Berlin
WED_NIGHT = datetime(2025, 12, 3, 20, 0, tzinfo=UTC)  # 21:00
SAT_NOON = datetime(2025, 12, 6, 11, 0, tzinfo=UTC)


def test_business_hours_in_the_accounts_time_zone() -> None:
    assert HOURS.is_open(WED_NOON)
    assert not HOURS.is_open(datetime(2025, 12, 3, 16, 30, tzinfo=UTC))  # 17:30 in Berlin
    assert HOURS.is_open(datetime(2025, 12, 3, 8, 0, tzinfo=UTC))  # 09:00 in Berlin
    assert not HOURS.is_open(SAT_NOON)
    # Summer time: 09:00 in Berlin is 07:00 UTC.
    assert HOURS.is_open(datetime(2025, 7, 2, 7, 0, tzinfo=UTC))
    assert HOURS.next_opening(WED_NIGHT) == datetime(2025, 12, 4, 8, 0, tzinfo=UTC)
    assert HOURS.next_opening(datetime(2025, 12, 5, 20, 0, tzinfo=UTC)).weekday() == 0  # Monday


def test_one_absence_runs_from_closing_to_the_next_opening() -> None:
    friday_night = datetime(2025, 12, 5, 20, 0, tzinfo=UTC)
    assert not HOURS.reopened_between(friday_night, SAT_NOON)  # the same weekend
    assert HOURS.reopened_between(friday_night, datetime(2025, 12, 8, 20, 0, tzinfo=UTC))


def test_outside_hours_review_unless_the_account_says_auto() -> None:
    review = Policy(hours=HOURS)
    assert _after(_analysis(), review, open_now=False) is DecisionAction.REVIEW
    assert _after(_analysis(), review, open_now=True) is DecisionAction.AUTO
    auto = Policy(hours=BusinessHours("UTC", frozenset({0}), time(9), time(10), OutsideHours.AUTO))
    assert _after(_analysis(), auto, open_now=False) is DecisionAction.AUTO


@pytest.mark.parametrize("days", ["fri-mon", "mon-funday", ""])
def test_bad_days_are_refused(days: str) -> None:
    with pytest.raises(ValueError, match="mon"):
        parse_days(days)


@pytest.mark.parametrize(
    "text",
    [
        "talk to a human",
        "agent please",
        "can I speak to someone real",
        "real person pls",
        "Can I talk to a real person??",
        "I want to speak with your manager",
        "connect me with an agent",
        "HUMAN!",
        "i need a humna",  # typo
        "Is there a human I can talk to?",
        "représentant please",
    ],
)
def test_requests_for_a_person(text: str) -> None:
    assert asks_for_person(text)


@pytest.mark.parametrize(
    "text",
    [
        "I'm a human too",
        "are you a human?",
        "are you a real person",
        "the agent was rude to me yesterday",
        "human resources sent me a letter",
        "where is my order?",
        "someone stole my parcel",
        "talk to me about shipping",
    ],
)
def test_not_requests_for_a_person(text: str) -> None:
    assert not asks_for_person(text)


def _settings(policy: dict[str, object], **table: object) -> Settings:
    return Settings(
        accounts=(
            AccountTable.model_validate(
                {"name": "shop", "platform": "console", "policy": policy, **table}
            ),
        )
    )


def test_the_policy_table_resolves_into_the_account() -> None:
    settings = _settings(
        {
            "rules": [
                {"intent": "complaint", "action": "review"},
                {"intent": "abuse", "action": "ignore", "strike": True},
            ],
            "min_confidence": 0.6,
            "send_delay_s": 30,
            "handoff_reply": "One moment, a colleague takes over.",
            "business_hours": {
                "time_zone": "America/New_York",
                "days": "mon-fri,sun",
                "opens": "08:30",
                "closes": "18:00",
                "outside": "away",
                "away_message": "We're closed; back at 8:30.",
            },
        }
    )
    policy = load_accounts(settings).get("shop").policy
    assert policy.rules == (
        PolicyRule(DecisionAction.REVIEW, "complaint"),
        PolicyRule(DecisionAction.IGNORE, "abuse", strike=True),
    )
    assert (policy.min_confidence, policy.send_delay_s) == (0.6, 30.0)
    assert policy.handoff_reply == "One moment, a colleague takes over."
    assert policy.hours is not None
    assert policy.hours.days == frozenset({0, 1, 2, 3, 4, 6})
    assert policy.hours.opens == time(8, 30) and policy.hours.outside is OutsideHours.AWAY


def test_without_a_table_the_documented_defaults_apply() -> None:
    settings = Settings(policy_min_confidence=0.4)
    policy = load_accounts(settings).default.policy
    assert policy.rules == DEFAULT_RULES
    assert policy.min_confidence == 0.4 and policy.send_delay_s == 0.0 and policy.hours is None


@pytest.mark.parametrize(
    ("policy", "error"),
    [
        ({"sendd_delay_s": 3}, "sendd_delay_s"),
        ({"rules": [{"action": "review"}]}, "needs an intent"),
        ({"business_hours": {"time_zone": "Mars/Olympus"}}, "IANA time zone"),
        ({"business_hours": {"time_zone": "UTC", "opens": "18:00", "closes": "09:00"}}, "after"),
        ({"business_hours": {"time_zone": "UTC", "outside": "sleep"}}, "outside"),
        ({"send_delay_s": -1}, "send_delay_s"),
    ],
)
def test_bad_policy_tables_are_refused(policy: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        _settings(policy)


def test_a_rule_for_an_unknown_intent_is_refused() -> None:
    settings = _settings({"rules": [{"intent": "complain", "action": "review"}]})
    with pytest.raises(ConfigError, match="'complain' is not one of the account's intent"):
        load_accounts(settings)
