"""Settings: environment variables `AUTOREPLY_*`, then an optional TOML file, then defaults.

The TOML file is `autoreply.toml` in the working directory, or the file named by
`AUTOREPLY_CONFIG`. Keys in the file are the field names below without the prefix
(`database_url = "..."`). Environment variables win over the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.account_tables import AccountTable, check_webhook_secret, split_ids, split_labels
from bot.domain import DEFAULT_FALLBACK, DEFAULT_PERSONA, SAFETY_LABEL_VERDICTS, Mode

DEFAULT_INTENTS = (
    "question",
    "complaint",
    "praise",
    "request",
    "greeting",
    "spam",
    "abuse",
    "other",
)


def config_file() -> Path:
    return Path(os.environ.get("AUTOREPLY_CONFIG", "autoreply.toml"))


class Settings(BaseSettings):
    """Every knob of the service. Field names map to `AUTOREPLY_<NAME>` variables."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOREPLY_",
        extra="ignore",
        validate_default=True,
    )

    # --- storage -------------------------------------------------------------------------
    database_url: str = Field(
        "sqlite:///./autoreply.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user@host/db.",
    )
    # --- account -------------------------------------------------------------------------
    account: str = Field(
        "default", description="Handle of the console account (no platform configured)."
    )
    bot_name: str = Field("Bot", description="The bot's display name; stripped from drafts.")
    persona: str = Field(DEFAULT_PERSONA, description="Persona text that opens every prompt.")
    mode: Mode = Field(
        Mode.REVIEW_ALL,
        description="auto: send allowed drafts; review_all: queue every draft; off: store only.",
    )
    # --- model ---------------------------------------------------------------------------
    model: str = Field(
        "gpt2", description="Hub id, local save_pretrained directory, or path to a .gguf file."
    )
    adapter: str | None = Field(
        None, description="Optional LoRA adapter directory (peft save_pretrained) to activate."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the model runs.")
    prompt_format: Literal["auto", "chat", "plain", "dialogpt"] = Field(
        "auto",
        description="auto: chat when the tokenizer has a chat template, else plain; chat: the "
        "tokenizer's template; plain: persona + User:/Bot: turns; dialogpt: turns joined by EOS.",
    )
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="int8: dynamic int8 base weights on CPU (serves the base model or one merged "
        "adapter per process); none: full precision.",
    )
    cpu_threads: int | None = Field(
        None, ge=1, le=256, description="Threads torch uses on CPU; unset: torch's default."
    )
    compile: bool = Field(
        False,
        description="CUDA only: static KV cache + torch.compile for decoding (slow first calls).",
    )
    batch_window_ms: float = Field(
        20.0,
        ge=0.0,
        le=1000.0,
        description="How long a draft request waits for others to batch (restarts with each "
        "arrival, at most 10 windows).",
    )
    max_batch: int = Field(16, ge=1, le=256, description="Most rows in one generate call.")
    batch_token_budget: int = Field(
        16384,
        ge=64,
        description="Most padded tokens (rows x (prompt + new tokens)) in one generate call.",
    )
    max_loaded_adapters: int = Field(
        8, ge=1, le=256, description="LoRA adapters kept in memory; the least recent is unloaded."
    )
    candidates: int = Field(
        1,
        ge=1,
        le=16,
        description="Replies sampled per message (best-of-n); the best surviving one is drafted.",
    )
    history_turns: int = Field(6, ge=0, le=100, description="Past turns put in the prompt.")
    max_new_tokens: int = Field(48, ge=1, le=512, description="Cap on generated tokens.")
    temperature: float = Field(0.8, gt=0.0, le=5.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.3, ge=1.0, le=5.0)
    no_repeat_ngram_size: int = Field(3, ge=0, le=20)
    do_sample: bool = Field(True, description="Sample (top-p) rather than greedy decoding.")
    seed: int | None = Field(None, description="Fix the sampling seed (tests, evaluation).")
    fallback_reply: str = Field(
        DEFAULT_FALLBACK, description="Sent in place of a draft that is empty after clean-up."
    )
    # --- analysis and safety -------------------------------------------------------------
    intent_labels: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_INTENTS, description="Comma-separated intent labels; must include 'other'."
    )
    max_reply_chars: int = Field(
        600, ge=1, le=4096, description="Drafts longer than this go to review."
    )
    toxicity_review: float = Field(0.5, ge=0.0, le=1.0, description="Review at this toxicity.")
    toxicity_block: float = Field(0.85, ge=0.0, le=1.0, description="Block at this toxicity.")
    # --- decision policy (per-account rules: [accounts.policy], bot/account_tables.py) ---
    policy_min_confidence: float = Field(
        0.2, ge=0.0, le=1.0, description="Review when intent or sentiment is less likely."
    )
    queue_expiry_h: float = Field(
        48.0, ge=0.0, description="Queued drafts older than this expire unsent (0: never)."
    )
    # --- telegram ------------------------------------------------------------------------
    telegram_token: SecretStr | None = Field(
        None, description="Bot token from @BotFather; setting it starts the Telegram channel."
    )
    telegram_base_url: str | None = Field(
        None,
        description="Bot API base URL for a self-hosted server, e.g. http://127.0.0.1:8081/bot.",
    )
    telegram_webhook_url: str | None = Field(
        None, description="Public HTTPS URL Telegram pushes to; unset means long polling."
    )
    telegram_webhook_listen: str = Field("127.0.0.1", description="Address the webhook binds.")
    telegram_webhook_port: int = Field(8443, ge=1, le=65535)
    telegram_webhook_secret: SecretStr | None = Field(
        None, description="Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (required)."
    )
    telegram_webhook_max_body: int = Field(
        1_000_000, ge=1024, description="Largest webhook request body accepted, in bytes."
    )
    telegram_moderator_chat_id: int | None = Field(
        None, description="Chat that receives draft cards with Approve / Edit / Reject buttons."
    )
    telegram_moderator_ids: Annotated[tuple[int, ...], NoDecode] = Field(
        (), description="Comma-separated Telegram user ids allowed to moderate."
    )
    telegram_answer_edits: bool = Field(
        False, description="Answer edited messages too (they are always stored as versions)."
    )
    telegram_store_chatter: bool = Field(
        True, description="Store group messages not addressed to the bot, as context."
    )
    telegram_disclosure: str | None = Field(
        None, description="Line appended to every reply, e.g. 'AI-written reply'."
    )
    telegram_user_cooldown_s: float = Field(
        5.0,
        ge=0.0,
        description="After answering a user in a chat, their messages handled within this many "
        "seconds get no answer (a burst gets one reply, not twenty); 0 turns it off.",
    )
    telegram_poll_timeout_s: int = Field(25, ge=0, le=50, description="getUpdates long poll.")
    # --- learning loop -------------------------------------------------------------------
    adapters_dir: Path = Field(
        Path("adapters"),
        description="Where trained adapter versions are written (<account>/<kind>/v<N>/).",
    )
    exports_dir: Path = Field(Path("exports"), description="Where `autoreply export` writes.")
    export_max_per_user: int = Field(
        50, ge=1, description="Most training examples taken from one platform user (newest kept)."
    )
    registry_poll_s: float = Field(
        5.0,
        ge=0.5,
        le=3600.0,
        description="How often a running service checks the registry for promotions/rollbacks.",
    )
    promote_margin: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="A candidate is promoted only if it beats the active adapter by this share "
        "(perplexity lower, or macro-F1 higher, by 2% by default).",
    )
    retrain_cron: str = Field(
        "30 3 * * *", description="When the nightly retraining runs (cron, service time zone)."
    )
    retrain_enabled: bool = Field(
        False, description="Run the nightly export-train-evaluate-promote job in `autoreply run`."
    )
    retrain_min_examples: int = Field(
        20, ge=1, description="Fewest new examples that make a nightly retraining worth running."
    )
    retrain_threads: int = Field(
        1, ge=1, le=256, description="torch threads for a training subprocess (leave cores free)."
    )
    retrain_nice: int = Field(
        10, ge=0, le=19, description="Scheduling niceness of the training subprocess."
    )
    retrain_on_shutdown: Literal["terminate", "finish"] = Field(
        "terminate",
        description="What happens to a running training when the service stops: terminate it "
        "(the run is marked aborted) or wait for it to finish.",
    )
    retrain_lease_s: float = Field(
        300.0, ge=10.0, description="Lease expiry for the one nightly runner (renewed meanwhile)."
    )
    safety_label_verdicts: dict[str, str] = Field(
        default_factory=lambda: dict(SAFETY_LABEL_VERDICTS),
        description="Safety head label -> allow / review / block; unknown labels review.",
    )
    safety_head_confidence: float = Field(
        0.85,
        ge=0.0,
        le=1.0,
        description="A promoted safety head flags a text only when its label that asks for "
        "review or block has at least this probability (see docs/SAFETY.md for the trade-off).",
    )
    safety_max_false_positive_rate: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="The eval gate refuses a safety head that flags more than this share of the "
        "held-out texts whose label is allowed (neutral statements, ordinary traffic).",
    )
    # --- privacy -------------------------------------------------------------------------
    redact_pii: bool = Field(
        False,
        description="Replace e-mail addresses, phone, card and IBAN numbers and URLs with a query "
        "string by placeholders (<email>, ...) in messages and model drafts before they are "
        "stored and handled. Off by default: moderators often need them (the order's e-mail).",
    )
    retention_days: int = Field(
        0,
        ge=0,
        description="Remove messages, drafts and sent replies older than this many days, daily "
        "(queued drafts and unsent replies are kept); 0 keeps everything.",
    )
    # --- web dashboard (bot/web/) ----------------------------------------------------------
    web_host: str = Field("127.0.0.1", description="Address the dashboard binds.")
    web_port: int = Field(8080, ge=1, le=65535, description="Port the dashboard listens on.")
    web_secret: SecretStr | None = Field(
        None,
        description="Key that signs session cookies. Unset: a random key is made once and kept "
        "in web_secret_file, so sessions survive restarts; set it when several processes serve "
        "the dashboard.",
    )
    web_secret_file: Path = Field(
        Path(".autoreply-web-secret"),
        description="Where the generated session key is kept (mode 0600) when web_secret is unset.",
    )
    web_cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only (set it behind TLS)."
    )
    web_session_hours: float = Field(
        12.0, gt=0.0, le=24.0 * 30, description="How long a dashboard login lasts."
    )
    web_login_max_failures: int = Field(
        5, ge=1, description="Wrong passwords for one name from one address before a lock-out."
    )
    web_login_window_s: float = Field(
        900.0, gt=0.0, description="How long failed logins count, and how long a lock-out lasts."
    )
    web_public_url: str | None = Field(
        None,
        description="The dashboard's address as users reach it, for one-time login links "
        "(default http://web_host:web_port).",
    )
    web_link_minutes: float = Field(
        10.0, gt=0.0, le=24 * 60, description="How long a one-time login link stays valid."
    )
    # --- analytics -----------------------------------------------------------------------
    topics_enabled: bool = Field(
        True, description="Fit each account's topics on a schedule in `autoreply run`."
    )
    topics_cron: str = Field(
        "15 * * * *", description="When the topics fit runs (cron, service time zone; hourly)."
    )
    topics_window_days: int = Field(
        7, ge=1, le=90, description="Fit topics on the inbound messages of this many last days."
    )
    topics_max: int = Field(
        8, ge=2, le=30, description="Most topics per fit (fewer for few messages: sqrt(n)/2)."
    )
    topics_lease_s: float = Field(
        7200.0,
        ge=60.0,
        description="Lease that keeps each account's topics fit in one process; keep it longer "
        "than the interval of topics_cron, so the same process keeps the job.",
    )
    # --- logging -------------------------------------------------------------------------
    log_level: str = Field("INFO", description="Python logging level name.")
    # --- several accounts ----------------------------------------------------------------
    accounts: tuple[AccountTable, ...] = Field(
        (),
        description="[[accounts]] tables in the TOML file; see bot/accounts.py. Without them "
        "the flat settings above describe one account named 'default'.",
    )

    _labels = field_validator("intent_labels", mode="before")(split_labels)
    _ids = field_validator("telegram_moderator_ids", mode="before")(split_ids)
    _secret = field_validator("telegram_webhook_secret")(check_webhook_secret)

    @field_validator("persona", "fallback_reply", "bot_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank; set a short text")
        return value.strip()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.toxicity_block < self.toxicity_review:
            raise ValueError(
                "toxicity_block must be >= toxicity_review; raise AUTOREPLY_TOXICITY_BLOCK"
            )
        # Beside [[accounts]] the flat webhook settings are an error of their own (accounts.py).
        if self.telegram_webhook_url and self.telegram_webhook_secret is None and not self.accounts:
            raise ValueError(
                "webhook mode needs a secret: set AUTOREPLY_TELEGRAM_WEBHOOK_SECRET (1-256 of "
                "A-Z a-z 0-9 _ -), or unset AUTOREPLY_TELEGRAM_WEBHOOK_URL to use polling"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Without this source pydantic-settings would ignore the TOML file with only a warning.
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return (init_settings, env_settings, toml, file_secret_settings)


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one actionable ConfigError."""
    import tomllib

    from pydantic import ValidationError

    from bot.errors import ConfigError

    path = config_file()
    if "AUTOREPLY_CONFIG" in os.environ and not path.is_file():
        raise ConfigError(f"AUTOREPLY_CONFIG names {path}, which does not exist; fix the path")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix that line") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        if loc[:1] == ("accounts",) and len(loc) > 1 and isinstance(loc[1], int):
            # One line naming the account and the field, as the operator wrote them.
            field = ".".join(map(str, loc[2:])) or "table"
            raise ConfigError(
                f"{path}: account {_account_label(loc[1])}: {field}: {_message(first)}; fix "
                "that [[accounts]] table"
            ) from exc
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {_message(err)}"
            for err in exc.errors()
        )
        raise ConfigError(
            f"invalid settings ({problems}); fix the AUTOREPLY_* variables or {path}"
        ) from exc


def _message(error: Any) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown key; check its spelling against the README's [[accounts]] table"
    return str(error["msg"])


def _account_label(index: int) -> str:
    """`'shop'` (the name as written in the file) or `#2` when the table has no usable name."""
    import tomllib

    try:
        tables = tomllib.loads(config_file().read_text(encoding="utf-8")).get("accounts", [])
        name = tables[index].get("name")
    except (OSError, tomllib.TOMLDecodeError, IndexError, AttributeError):
        name = None
    return repr(name) if isinstance(name, str) and name else f"#{index + 1}"
