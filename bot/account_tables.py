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
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bot.domain import Mode

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

    _labels = field_validator("intent_labels", mode="before")(split_labels)

    @field_validator("persona", "fallback_reply", "bot_name")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank; set a short text")
        return value.strip() if value is not None else None
