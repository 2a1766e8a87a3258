"""The `[[accounts]]` tables of autoreply.toml, as typed pydantic models.

Each account is one table; each platform (and, later, each feature such as a policy or a
blocklist) is one sub-table with a model of its own, so adding a section is adding one model
and one field here. Unknown keys are errors (`extra="forbid"`): a misspelt key must not be
silently ignored in a bot that speaks for a brand.

```toml
[[accounts]]
name = "shop"
platform = "telegram"
mode = "auto"
persona = "You are the support account of Shop."

[accounts.telegram]
token_env = "SHOP_BOT_TOKEN"          # the token itself stays out of the file
moderator_chat_id = -1001234567890
moderator_ids = [11111111, 22222222]
```
"""

from __future__ import annotations

import re
from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bot.business_hours import OutsideHours, parse_days
from bot.domain import Mode, Sentiment

ANONYMOUS_ADMIN_ID = 1087968824  # Telegram's "GroupAnonymousBot", shared by anonymous admins
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
PromptFormatName = Literal["auto", "chat", "plain", "dialogpt"]


def split_ids(value: object) -> object:
    """`1, 2` or [1, 2] -> (1, 2), with a message that says what an id is."""
    if isinstance(value, str):
        value = [part for part in (p.strip() for p in value.split(",")) if part]
    if isinstance(value, list | tuple):
        try:
            ids = tuple(int(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "moderator ids must be numeric Telegram user ids; send /id to the bot to "
                "learn yours"
            ) from exc
        if ANONYMOUS_ADMIN_ID in ids:
            raise ValueError(
                f"{ANONYMOUS_ADMIN_ID} is Telegram's anonymous group admin, shared by every "
                "anonymous admin; list real user ids instead"
            )
        return ids
    return value


def split_labels(value: object) -> object:
    """Comma-separated or listed intent labels, lower-cased; 'other' is required."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if isinstance(value, list | tuple):
        labels = tuple(str(v).strip().lower() for v in value if str(v).strip())
        if "other" not in labels:
            raise ValueError(
                "intent labels must include 'other' (the label for messages no rule matches)"
            )
        if len(set(labels)) != len(labels):
            raise ValueError("intent labels have duplicates; list each label once")
        return labels
    return value


def check_webhook_secret(value: SecretStr | None) -> SecretStr | None:
    # Telegram accepts 1-256 characters of A-Z, a-z, 0-9, _ and -.
    if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
        raise ValueError("use 1-256 characters from A-Z, a-z, 0-9, _ and -")
    return value


class TelegramSection(BaseModel):
    """`[accounts.telegram]`: how one Telegram bot connects, and who moderates it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_env: str | None = Field(
        None, description="Environment variable holding the bot token (keeps it out of the file)."
    )
    token: SecretStr | None = Field(None, description="The token itself; prefer token_env.")
    base_url: str | None = Field(None, description="Self-hosted Bot API server, .../bot.")
    webhook_url: str | None = Field(None, description="Public HTTPS URL; unset means polling.")
    webhook_secret_env: str | None = Field(None, description="Variable holding the secret.")
    webhook_secret: SecretStr | None = Field(None, description="The secret; prefer _env.")
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(8443, ge=1, le=65535)
    webhook_max_body: int = Field(1_000_000, ge=1024)
    moderator_chat_id: int | None = Field(None, description="Chat that gets draft cards.")
    moderator_ids: tuple[int, ...] = Field((), description="User ids allowed to moderate.")
    answer_edits: bool = False
    store_chatter: bool = True
    poll_timeout_s: int = Field(25, ge=0, le=50)

    _ids = field_validator("moderator_ids", mode="before")(split_ids)
    _secret = field_validator("webhook_secret")(check_webhook_secret)

    @model_validator(mode="after")
    def _one_source_each(self) -> TelegramSection:
        if self.token is not None and self.token_env is not None:
            raise ValueError("set token_env or token, not both (token_env keeps it secret)")
        if self.webhook_secret is not None and self.webhook_secret_env is not None:
            raise ValueError("set webhook_secret_env or webhook_secret, not both")
        return self


class RuleTable(BaseModel):
    """One `[[accounts.policy.rules]]` entry: when intent (and sentiment) match, take action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intent: str | None = Field(None, description="An intent label; unset matches any.")
    sentiment: Sentiment | None = Field(None, description="negative, neutral or positive.")
    action: Literal["auto", "review", "ignore"]
    strike: bool = Field(False, description="Count the message against its sender.")

    @model_validator(mode="after")
    def _says_when(self) -> RuleTable:
        if self.intent is None and self.sentiment is None:
            raise ValueError("a rule needs an intent, a sentiment or both; say when it applies")
        return self


class HoursTable(BaseModel):
    """`[accounts.policy.business_hours]`: when people are at work, and what happens outside."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_zone: str = Field(description="IANA time zone, e.g. Europe/Berlin.")
    days: str = Field("mon-fri", description="Open days: 'mon-fri', 'mon,wed,fri', ...")
    opens: time = time(9, 0)
    closes: time = time(17, 0)
    outside: OutsideHours = Field(OutsideHours.REVIEW, description="review, auto or away.")
    away_message: str | None = Field(None, description="Sent once per chat and absence.")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone; write e.g. 'Europe/Berlin' or "
                "'America/New_York'"
            ) from None
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        parse_days(value)
        return value

    @model_validator(mode="after")
    def _closes_after_opening(self) -> HoursTable:
        if not self.opens < self.closes:
            raise ValueError("closes must be after opens (spans over midnight are not supported)")
        return self


class PolicySection(BaseModel):
    """`[accounts.policy]`: how the account decides between ignore, auto and review."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[RuleTable, ...] | None = Field(
        None,
        description="Replace the default rules (negative complaint: review; spam: "
        "ignore; abuse: ignore and strike).",
    )
    min_confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="Review below this (AUTOREPLY_POLICY_MIN_CONFIDENCE)."
    )
    handoff: bool = Field(True, description="Hand the chat to people when a user asks.")
    handoff_reply: str | None = Field(None, description="Acknowledgement of a handoff.")
    safe_response: str | None = Field(None, description="Reply to messages about self-harm.")
    send_delay_s: float = Field(0.0, ge=0.0, le=86400.0, description="Auto replies wait this.")
    business_hours: HoursTable | None = None

    @field_validator("handoff_reply", "safe_response")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank; set a short text")
        return value.strip() if value is not None else None


def _entries(value: object) -> object:
    """A list of words or phrases: one string becomes a one-entry list; blanks are refused."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        entries = tuple(str(v).strip() for v in value)
        if not all(entries):
            raise ValueError("an entry is blank; remove it or write the word or phrase")
        return entries
    return value


def _domains(value: object) -> object:
    """Domains as written in a link ("https://www.shop.example/help") -> "shop.example"."""
    value = _entries(value)
    if not isinstance(value, tuple):
        return value
    domains = []
    for entry in value:
        host = re.sub(r"^[a-z]+://", "", entry.lower()).split("/")[0].removeprefix("www.")
        if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}", host):
            raise ValueError(f"{entry!r} is not a domain; write it like shop.example.com")
        domains.append(host)
    return tuple(domains)


def _handles(value: object) -> object:
    """Handles with or without '@' -> without; letters, digits and _ only."""
    value = _entries(value)
    if not isinstance(value, tuple):
        return value
    handles = tuple(entry.removeprefix("@") for entry in value)
    for handle in handles:
        if not re.fullmatch(r"\w{2,32}", handle, re.ASCII):
            raise ValueError(f"{handle!r} is not a handle; write it like @shop_support")
    return handles


class SafetySection(BaseModel):
    """`[accounts.safety]`: this account's safety gate. Unset thresholds take the process-wide
    AUTOREPLY_TOXICITY_REVIEW / _BLOCK; every list is empty by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    toxicity_review: float | None = Field(
        None, ge=0.0, le=1.0, description="Review at this toxicity (default 0.5, process-wide)."
    )
    toxicity_block: float | None = Field(
        None, ge=0.0, le=1.0, description="Block at this toxicity (default 0.85, process-wide)."
    )
    own_handle: str | None = Field(
        None, description="The account's @username; replies may always mention it."
    )
    allowed_domains: tuple[str, ...] = Field(
        (), description="Domains replies may link to (subdomains too); any other link: review."
    )
    allowed_handles: tuple[str, ...] = Field(
        (), description="@handles replies may mention; any other mention: review."
    )
    blocklist: tuple[str, ...] = Field(
        (), description="Words or phrases a reply must never contain (block)."
    )
    commitment_phrases: tuple[str, ...] = Field(
        (), description="Extra phrases that count as commitments (review)."
    )
    approved_phrases: tuple[str, ...] = Field(
        (), description="Commitments the brand approved; a commitment inside one passes."
    )

    _lists = field_validator("blocklist", "commitment_phrases", "approved_phrases", mode="before")(
        _entries
    )
    _domain_list = field_validator("allowed_domains", mode="before")(_domains)
    _handle_list = field_validator("allowed_handles", mode="before")(_handles)

    @field_validator("own_handle", mode="before")
    @classmethod
    def _own_handle(cls, value: object) -> object:
        if value is None:
            return None
        handles = _handles([value])
        return handles[0] if isinstance(handles, tuple) else handles

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> SafetySection:
        review, block = self.toxicity_review, self.toxicity_block
        if review is not None and block is not None and block < review:
            raise ValueError(
                f"toxicity_block ({block}) is below toxicity_review ({review}); raise "
                "toxicity_block or lower toxicity_review"
            )
        return self


class AccountTable(BaseModel):
    """One `[[accounts]]` table. Unset fields take the process-wide defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=f"^{NAME_PATTERN}$", description="Unique; lower case, digits, -_.")
    platform: str = Field(description="telegram or console.")
    default: bool = Field(False, description="Used by chat/queue/... without --account.")
    mode: Mode = Mode.REVIEW_ALL
    persona: str | None = None
    prompt_format: PromptFormatName | None = None
    intent_labels: tuple[str, ...] | None = None
    bot_name: str | None = None
    fallback_reply: str | None = None
    disclosure: str | None = Field(None, description="Line appended to every reply.")
    user_cooldown_s: float | None = Field(
        None, ge=0.0, description="Seconds a user is not answered again (5; console 0)."
    )
    adapter: str | None = Field(None, description="Pinned LoRA adapter directory.")
    candidates: int | None = Field(
        None, ge=1, le=16, description="Replies sampled per message (AUTOREPLY_CANDIDATES)."
    )
    telegram: TelegramSection | None = None
    policy: PolicySection | None = None
    safety: SafetySection = Field(default_factory=SafetySection)

    _labels = field_validator("intent_labels", mode="before")(split_labels)

    @field_validator("persona", "fallback_reply", "bot_name")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank; set a short text")
        return value.strip() if value is not None else None
