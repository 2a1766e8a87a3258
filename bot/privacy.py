"""Privacy actions: erase one platform user's data (GDPR Art. 17), and prune what is older than
the retention period (GDPR Art. 5(1)(e)). Both are audited in the same unit of work as the
removal, so an audit row exists exactly when the data is gone.

What each removes is decided in bot/storage/privacy.py. The CLI (bot/cli_privacy.py) and the
daily retention job (bot/jobs.py) call these.
"""

from __future__ import annotations

from datetime import timedelta

from bot.domain import Actor, ActorKind, ModerationKind, utcnow
from bot.errors import InputError, NotFoundError, PermissionDeniedError
from bot.storage import accounts as account_store
from bot.storage import drafts as draft_store
from bot.storage import privacy as privacy_store
from bot.storage.db import Database
from bot.storage.privacy import Removed

RETENTION = Actor(ActorKind.POLICY, "retention", "retention")


def erase_user(
    db: Database, actor: Actor, platform: str, user_id: str, account: str | None = None
) -> list[Removed]:
    """Remove a platform user's data from every account that knows them (or from `account`),
    mark them erased, and audit it; returns what was removed per account."""
    with db.session() as s:
        if account is not None and account_store.by_name(s, account) is None:
            raise NotFoundError(
                f"there is no account {account!r} in the database; see `autoreply accounts list`"
            )
        users = privacy_store.find_users(s, platform, user_id, account)
        if not users:
            where = f"account {account!r}" if account else "any account"
            raise NotFoundError(
                f"{platform} user {user_id!r} is not known to {where}; nothing was removed. "
                "Check the platform and the user's id (on Telegram the numeric id, as /id shows)"
            )
        denied = [user.account for user in users if not actor.may_act_on(user.account)]
        if denied:
            raise PermissionDeniedError(
                f"{actor.display} may not erase users of {', '.join(map(repr, denied))}; ask an "
                "operator (or name one account with --account)"
            )
        removed = [privacy_store.erase_user(s, user) for user in users]
        for result in removed:
            draft_store.audit(
                s,
                account_id=result.account_id,
                actor=actor,
                action=ModerationKind.ERASE,
                target_kind="user",
                target=f"{platform}:{user_id}"[:128],
                note=f"removed {result.summary()}",
            )
    return removed


def prune(db: Database, days: int, actor: Actor = RETENTION) -> list[Removed]:
    """Remove every account's data older than `days` days (see `privacy_store.prune` for what
    is kept); one unit of work per account, each audited when it removed anything."""
    if days < 1:
        raise InputError(
            f"a retention period of {days} days would remove everything; give 1 day or more"
        )
    before = utcnow() - timedelta(days=days)
    with db.session() as s:
        accounts = privacy_store.accounts(s)
    results = []
    for account_id, name in accounts:
        with db.session() as s:
            result = privacy_store.prune(s, account_id, name, before)
            if result.total:
                draft_store.audit(
                    s,
                    account_id=account_id,
                    actor=actor,
                    action=ModerationKind.PRUNE,
                    target_kind="account",
                    target=name,
                    note=f"older than {days} days: removed {result.summary()}",
                )
        results.append(result)
    return results
