"""Accounts: who the service speaks for, resolved from the config into plain values.

Precedence (the README's "Accounts" section says the same):
- The config is the source of truth for an account's settings: its `[[accounts]]` table in
  autoreply.toml, or, with no tables, the flat `AUTOREPLY_*` variables, which then describe one
  account named `default` exactly as before accounts existed.
- Beside `[[accounts]]`, process-wide variables (database, model, device, decoding, log level,
  and the defaults for prompt format, intent labels, bot name and fallback reply) stay valid.
  Per-account variables (Telegram connection, moderators, mode, persona, console account) set
  beside `[[accounts]]` are an error: they would be silently mixed otherwise.
- The database holds runtime state only: paused chats and accounts, bans, the adapter
  registry's active adapter. A pinned `adapter` in the config wins over the registry.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from pydantic import SecretStr

from bot.account_tables import AccountTable, PolicySection, SafetySection, TelegramSection
from bot.business_hours import DEFAULT_AWAY, BusinessHours, parse_days
from bot.config import Settings, config_file
from bot.domain import DecisionAction, Mode, ReplyStyle
from bot.errors import ConfigError
from bot.policy import DEFAULT_RULES, Policy, PolicyRule
from bot.safety.context import CheckContext, SafetyRules

DEFAULT_NAME = "default"
DEFAULT_COOLDOWN_S = 5.0

# Flat variables that describe one account; beside [[accounts]] they are an error.
PER_ACCOUNT_FIELDS = (
    "account",
    "mode",
    "persona",
    "telegram_token",
    "telegram_base_url",
    "telegram_webhook_url",
    "telegram_webhook_listen",
    "telegram_webhook_port",
    "telegram_webhook_secret",
    "telegram_webhook_max_body",
    "telegram_moderator_chat_id",
    "telegram_moderator_ids",
    "telegram_answer_edits",
    "telegram_store_chatter",
    "telegram_disclosure",
    "telegram_user_cooldown_s",
    "telegram_poll_timeout_s",
)


@dataclass(frozen=True, slots=True)
class Account:
    """One account with every setting filled in. `handle` is the platform's own id (for
    Telegram the bot id, from the token); `name` is what operators call it."""

    name: str
    platform: str
    handle: str
    mode: Mode
    style: ReplyStyle
    intent_labels: tuple[str, ...]
    disclosure: str | None
    user_cooldown_s: float
    adapter: str | None = None  # pinned LoRA adapter directory; None: the active one
    telegram: TelegramSection | None = None
    is_default: bool = False
    # Decision rules, handoff, send delay, business hours.
    policy: Policy = field(default_factory=Policy)
    # The safety gate's thresholds and lists for this account ([accounts.safety]).
    safety: SafetyRules = field(default_factory=SafetyRules)

    def check_context(self, user_text: str = "") -> CheckContext:
        """What the safety gate needs to judge this account's drafts (and, for the
        thresholds, its incoming messages)."""
        return CheckContext(user_text=user_text, persona=self.style.persona, rules=self.safety)

    @property
    def review_chat_id(self) -> str | None:
        """The chat that gets a card for every queued draft (Telegram's moderators' chat)."""
        if self.telegram is None or self.telegram.moderator_chat_id is None:
            return None
        return str(self.telegram.moderator_chat_id)

    @property
    def moderator_ids(self) -> frozenset[int]:
        return frozenset(self.telegram.moderator_ids) if self.telegram else frozenset()

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values to redact from logs."""
        if self.telegram is None:
            return ()
        found = (self.telegram.token, self.telegram.webhook_secret)
        return tuple(s.get_secret_value() for s in found if s is not None)

    def console(self) -> Account:
        """This account as seen from a local console (`autoreply chat`): same persona, mode
        and adapter, its own history. A console account is its own console; another
        platform's account chats as `console-<name>`, so console turns never mix with (or get
        sent to) the platform's chats."""
        if self.platform == "console":
            return self
        return replace(
            self,
            name=f"console-{self.name}",
            platform="console",
            handle=self.name,
            telegram=None,
            user_cooldown_s=0.0,
        )


@dataclass(frozen=True, slots=True)
class Accounts:
    """Every configured account, in config order, with the default one marked."""

    all: tuple[Account, ...]

    @property
    def default(self) -> Account:
        return next((a for a in self.all if a.is_default), self.all[0])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.all)

    def get(self, name: str | None) -> Account:
        """The named account, or the default one for None."""
        if name is None:
            return self.default
        for account in self.all:
            if account.name == name:
                return account
        raise ConfigError(
            f"there is no account named {name!r}; configured: {', '.join(self.names)} "
            "(see `autoreply accounts list`)"
        )

    def __iter__(self) -> Iterator[Account]:
        return iter(self.all)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(secret for account in self.all for secret in account.secrets)


def load_accounts(settings: Settings) -> Accounts:
    """Resolve the accounts the settings describe. Raises ConfigError with one line that names
    the account and the field at fault."""
    if not settings.accounts:
        return Accounts((_flat_account(settings),))
    stray = sorted(set(settings.model_fields_set) & set(PER_ACCOUNT_FIELDS))
    if stray:
        # Set as a variable or as a top-level key of the file: name both ways of spelling it.
        names = ", ".join(f"{f} (AUTOREPLY_{f.upper()})" for f in stray)
        raise ConfigError(
            f"{names} describe{'s' if len(stray) == 1 else ''} one account, but {config_file()} "
            "has [[accounts]]: move the value into an account's table, or remove [[accounts]] "
            "to use the flat settings"
        )
    accounts = [_from_table(table, settings) for table in settings.accounts]
    _check_unique(accounts)
    defaults = [a.name for a in accounts if a.is_default]
    if len(defaults) > 1:
        raise ConfigError(
            f"accounts {', '.join(map(repr, defaults))}: default: only one account may be "
            "marked default = true"
        )
    if not defaults:
        accounts[0] = replace(accounts[0], is_default=True)
    return Accounts(tuple(accounts))


def _style(settings: Settings, table: AccountTable | None = None) -> ReplyStyle:
    """Decoding is process-wide; prompt format, persona, name and fallback are per account.
    (Beside [[accounts]] the flat persona is an error, so `settings.persona` is the default.)"""
    table = table or AccountTable(name="flat", platform="console")
    return ReplyStyle(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
        no_repeat_ngram_size=settings.no_repeat_ngram_size,
        do_sample=settings.do_sample,
        seed=settings.seed,
        prompt_format=table.prompt_format or settings.prompt_format,
        persona=table.persona or settings.persona,
        bot_name=table.bot_name or settings.bot_name,
        fallback_reply=table.fallback_reply or settings.fallback_reply,
        candidates=table.candidates or settings.candidates,
    )


def _flat_account(settings: Settings) -> Account:
    """The one account the flat AUTOREPLY_* variables describe, named `default`."""
    telegram = None
    platform, handle = "console", settings.account
    if settings.telegram_token is not None:
        telegram = TelegramSection(
            token=settings.telegram_token,
            base_url=settings.telegram_base_url,
            webhook_url=settings.telegram_webhook_url,
            webhook_secret=settings.telegram_webhook_secret,
            webhook_listen=settings.telegram_webhook_listen,
            webhook_port=settings.telegram_webhook_port,
            webhook_max_body=settings.telegram_webhook_max_body,
            moderator_chat_id=settings.telegram_moderator_chat_id,
            moderator_ids=settings.telegram_moderator_ids,
            answer_edits=settings.telegram_answer_edits,
            store_chatter=settings.telegram_store_chatter,
            poll_timeout_s=settings.telegram_poll_timeout_s,
        )
        platform, handle = "telegram", _bot_id(settings.telegram_token)
    return Account(
        name=DEFAULT_NAME,
        platform=platform,
        handle=handle,
        mode=settings.mode,
        style=_style(settings),
        intent_labels=settings.intent_labels,
        disclosure=settings.telegram_disclosure,
        # The cooldown is a Telegram setting: the console is one person typing lines.
        user_cooldown_s=settings.telegram_user_cooldown_s if telegram is not None else 0.0,
        adapter=settings.adapter,
        telegram=telegram,
        is_default=True,
        policy=_policy(None, settings, settings.intent_labels, DEFAULT_NAME),
        safety=_safety(SafetySection(), settings, DEFAULT_NAME),
    )


def _from_table(table: AccountTable, settings: Settings) -> Account:
    from bot.channels.registry import platforms  # the registry imports this module

    where = f"{config_file()}: account {table.name!r}"
    if table.platform not in platforms():
        raise ConfigError(
            f"{where}: platform: unknown platform {table.platform!r}; use one of "
            f"{', '.join(platforms())}"
        )
    telegram = None
    handle = table.name
    if table.platform == "telegram":
        if table.telegram is None:
            raise ConfigError(
                f"{where}: telegram: a Telegram account needs an [accounts.telegram] table with "
                "token_env (the variable that holds the bot token)"
            )
        telegram = _resolve_secrets(table.telegram, where)
        assert telegram.token is not None
        handle = _bot_id(telegram.token, f"{where}: telegram.token_env")
    elif table.telegram is not None:
        raise ConfigError(
            f"{where}: telegram: this account's platform is {table.platform!r}; remove its "
            '[accounts.telegram] table or set platform = "telegram"'
        )
    return Account(
        name=table.name,
        platform=table.platform,
        handle=handle,
        mode=table.mode,
        style=_style(settings, table),
        intent_labels=table.intent_labels or settings.intent_labels,
        disclosure=table.disclosure,
        user_cooldown_s=(
            table.user_cooldown_s
            if table.user_cooldown_s is not None
            else (DEFAULT_COOLDOWN_S if table.platform != "console" else 0.0)
        ),
        adapter=table.adapter or settings.adapter,
        telegram=telegram,
        is_default=table.default,
        policy=_policy(
            table.policy, settings, table.intent_labels or settings.intent_labels, where
        ),
        safety=_safety(table.safety, settings, where),
    )


def _safety(section: SafetySection, settings: Settings, where: str) -> SafetyRules:
    """The account's `[accounts.safety]`; unset thresholds stay None (the process-wide ones),
    but the pair in force must still be in order."""
    review = section.toxicity_review
    block = section.toxicity_block
    in_force = (
        review if review is not None else settings.toxicity_review,
        block if block is not None else settings.toxicity_block,
    )
    if in_force[1] < in_force[0]:
        raise ConfigError(
            f"{where}: safety.toxicity_block: {in_force[1]} is below the toxicity_review in "
            f"force ({in_force[0]}); set both in [accounts.safety] so that review <= block"
        )
    return SafetyRules(
        toxicity_review=review,
        toxicity_block=block,
        own_handle=section.own_handle,
        allowed_domains=section.allowed_domains,
        allowed_handles=section.allowed_handles,
        blocklist=section.blocklist,
        commitment_phrases=section.commitment_phrases,
        approved_phrases=section.approved_phrases,
    )


def _policy(
    section: PolicySection | None, settings: Settings, intents: tuple[str, ...], where: str
) -> Policy:
    """The account's `[accounts.policy]` over the documented defaults (bot/policy.py)."""
    section = section or PolicySection()
    rules: tuple[PolicyRule, ...] = DEFAULT_RULES
    if section.rules is not None:
        rules = tuple(
            PolicyRule(DecisionAction(r.action), r.intent, r.sentiment, r.strike)
            for r in section.rules
        )
    for rule in rules:
        if rule.intent is not None and rule.intent not in intents and section.rules is not None:
            raise ConfigError(
                f"{where}: policy.rules: {rule.intent!r} is not one of the account's intent "
                f"labels ({', '.join(intents)}); fix the rule or add the label"
            )
    hours = None
    if section.business_hours is not None:
        table = section.business_hours
        hours = BusinessHours(
            time_zone=table.time_zone,
            days=parse_days(table.days),
            opens=table.opens,
            closes=table.closes,
            outside=table.outside,
            away_message=table.away_message or DEFAULT_AWAY,
        )
    defaults = Policy()
    return Policy(
        rules=rules,
        min_confidence=(
            section.min_confidence
            if section.min_confidence is not None
            else settings.policy_min_confidence
        ),
        handoff=section.handoff,
        handoff_reply=section.handoff_reply or defaults.handoff_reply,
        safe_response=section.safe_response or defaults.safe_response,
        send_delay_s=section.send_delay_s,
        hours=hours,
    )


def _resolve_secrets(section: TelegramSection, where: str) -> TelegramSection:
    token = section.token or _from_env(section.token_env, where, "telegram.token_env")
    if token is None:
        raise ConfigError(
            f"{where}: telegram.token_env: not set; name the environment variable that holds "
            'the bot token, e.g. token_env = "SHOP_BOT_TOKEN"'
        )
    secret = section.webhook_secret or _from_env(
        section.webhook_secret_env, where, "telegram.webhook_secret_env"
    )
    if section.webhook_url and secret is None:
        raise ConfigError(
            f"{where}: telegram.webhook_secret_env: webhook mode needs a secret; name the "
            "variable that holds it (1-256 of A-Z a-z 0-9 _ -), or remove webhook_url to poll"
        )
    return section.model_copy(update={"token": token, "webhook_secret": secret})


def _from_env(variable: str | None, where: str, field: str) -> SecretStr | None:
    if variable is None:
        return None
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ConfigError(
            f"{where}: {field}: the environment variable {variable} is not set; export it "
            "before starting the service"
        )
    return SecretStr(value)


def _bot_id(token: SecretStr, where: str = "AUTOREPLY_TELEGRAM_TOKEN") -> str:
    """The part before the colon is the bot's id: stable across username changes. A value of
    another shape is refused, so a secret never becomes an account's handle."""
    bot_id, colon, secret = token.get_secret_value().partition(":")
    if not (colon and bot_id.isdigit() and secret):
        raise ConfigError(
            f"{where}: this is not a bot token (expected <bot id>:<secret>, as @BotFather "
            "gives it); set the whole token"
        )
    return bot_id


def _check_unique(accounts: list[Account]) -> None:
    seen: dict[str, Account] = {}
    listeners: dict[tuple[str, int], str] = {}
    bots: dict[tuple[str, str], str] = {}
    where = str(config_file())
    for account in accounts:
        if account.name in seen:
            raise ConfigError(
                f"{where}: account {account.name!r}: name: two accounts have this name; give "
                "each [[accounts]] table its own name"
            )
        seen[account.name] = account
        identity = (account.platform, account.handle)
        if identity in bots and account.platform != "console":
            raise ConfigError(
                f"{where}: account {account.name!r}: telegram.token_env: the same bot as "
                f"account {bots[identity]!r}; one bot can serve one account"
            )
        bots[identity] = account.name
        tg = account.telegram
        if tg is not None and tg.webhook_url:
            address = (tg.webhook_listen, tg.webhook_port)
            if address in listeners:
                raise ConfigError(
                    f"{where}: account {account.name!r}: telegram.webhook_port: account "
                    f"{listeners[address]!r} already listens on {address[0]}:{address[1]}; give "
                    "each webhook its own port"
                )
            listeners[address] = account.name
