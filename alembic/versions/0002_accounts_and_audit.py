"""Accounts are named by the config; the audit trail covers more than drafts and outlives them.

accounts:
- new `name` VARCHAR(64) NOT NULL, unique (uq_accounts_name): the account's name in the config;
- `persona` and `mode` (with its CHECK ck_accounts_mode) are dropped: they live in the config;
- new `health` VARCHAR(16), `health_note` TEXT and `health_at` (all NULL): the serving
  process's view of its channel, `health_at` doubling as a heartbeat.

  Backfill of `name`: every row gets `<platform>-<handle>` (if that is longer than 64
  characters, `<platform>-<id>`), except one row that gets `default`: if exactly one account
  row has platform != 'console', that row; otherwise the row with platform 'console' and
  handle 'default', if any. Why: the flat AUTOREPLY_* settings describe the account named
  `default`; with a Telegram token that is the Telegram bot, without one the console account.
  The service re-binds names from the config at start, so the backfill only has to be unique
  and sensible.

moderation_actions (the audit trail):
- `draft_id` becomes nullable and its foreign key ON DELETE SET NULL (was CASCADE): audit rows
  outlive the draft they are about;
- new `account_id` NOT NULL, foreign key to accounts ON DELETE CASCADE, indexed with `id`
  (ix_moderation_actions_account); backfilled from the draft's message;
- new `target_kind` (NOT NULL, default 'draft') and `target` (backfilled with the draft id as
  text) name what was acted on; new `actor_kind` (NOT NULL, default 'cli'; backfilled from
  `moderator`: 'policy' for 'policy', 'cli' for names starting with 'cli', else 'telegram')
  and `actor_id` (left NULL: old rows only have the display name in `moderator`);
- the CHECK on `action` (ck_moderation_actions_moderation_kind) also allows 'override',
  'pause' and 'resume'.

Downgrade loses what 0001 cannot hold: audit rows without a draft are deleted, 'override'
becomes 'approve', 'pause' and 'resume' rows are deleted; `persona` and `mode` come back empty,
and account names and health are dropped.

House style as in 0001: VARCHAR + named CHECK for enumerations, constraint names written out
(op.f) as the naming convention makes them, backend-neutral server defaults and plain SQL that
runs on SQLite and PostgreSQL alike. Tables are changed in batch mode, which on SQLite copies
the table (env.py's migration engine turns foreign keys off for that, so the copy does not
cascade) and on PostgreSQL issues ordinary ALTERs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS_0001 = "action IN ('approve', 'edit', 'reject', 'auto_send', 'refused')"
ACTIONS_0002 = (
    "action IN ('approve', 'edit', 'reject', 'override', 'auto_send', 'pause', 'resume', 'refused')"
)
MODES_0001 = "mode IN ('auto', 'review_all', 'off')"

# `<platform>-<handle>`, or `<platform>-<id>` where that would not fit in 64 characters
# (platform is at most 32 characters, so the second always fits).
BACKFILL_NAMES = """
UPDATE accounts SET name = CASE
    WHEN length(platform) + 1 + length(handle) <= 64 THEN platform || '-' || handle
    ELSE platform || '-' || CAST(id AS VARCHAR(20))
END
"""
# The one account the flat AUTOREPLY_* settings describe (see the module docstring).
BACKFILL_DEFAULT = """
UPDATE accounts SET name = 'default'
WHERE id = CASE
    WHEN (SELECT count(*) FROM accounts WHERE platform <> 'console') = 1
        THEN (SELECT min(id) FROM accounts WHERE platform <> 'console')
    ELSE (SELECT min(id) FROM accounts WHERE platform = 'console' AND handle = 'default')
END
"""
BACKFILL_AUDIT = """
UPDATE moderation_actions SET
    account_id = (
        SELECT messages.account_id
        FROM reply_drafts JOIN messages ON messages.id = reply_drafts.message_id
        WHERE reply_drafts.id = moderation_actions.draft_id
    ),
    target = CAST(draft_id AS VARCHAR(128)),
    actor_kind = CASE
        WHEN moderator = 'policy' THEN 'policy'
        WHEN substr(moderator, 1, 3) = 'cli' THEN 'cli'
        ELSE 'telegram'
    END
"""


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("name", sa.String(64), nullable=True))
    op.execute(BACKFILL_NAMES)
    op.execute(BACKFILL_DEFAULT)
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("name", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint(op.f("uq_accounts_name"), ["name"])
        batch.drop_constraint(op.f("ck_accounts_mode"), type_="check")
        batch.drop_column("mode")
        batch.drop_column("persona")
        batch.add_column(sa.Column("health", sa.String(16), nullable=True))
        batch.add_column(sa.Column("health_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("health_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("moderation_actions") as batch:
        batch.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("target_kind", sa.String(16), server_default="draft", nullable=False)
        )
        batch.add_column(sa.Column("target", sa.String(128), nullable=True))
        batch.add_column(
            sa.Column("actor_kind", sa.String(16), server_default="cli", nullable=False)
        )
        batch.add_column(sa.Column("actor_id", sa.String(128), nullable=True))
    op.execute(BACKFILL_AUDIT)
    with op.batch_alter_table("moderation_actions") as batch:
        batch.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(
            op.f("fk_moderation_actions_account_id_accounts"),
            "accounts",
            ["account_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.alter_column("draft_id", existing_type=sa.Integer(), nullable=True)
        batch.drop_constraint(
            op.f("fk_moderation_actions_draft_id_reply_drafts"), type_="foreignkey"
        )
        batch.create_foreign_key(
            op.f("fk_moderation_actions_draft_id_reply_drafts"),
            "reply_drafts",
            ["draft_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.drop_constraint(op.f("ck_moderation_actions_moderation_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_moderation_actions_moderation_kind"), ACTIONS_0002)
        batch.create_index("ix_moderation_actions_account", ["account_id", "id"])


def downgrade() -> None:
    # Audit rows 0001 cannot hold: no draft, or an action it does not know.
    op.execute("DELETE FROM moderation_actions WHERE draft_id IS NULL")
    op.execute("DELETE FROM moderation_actions WHERE action IN ('pause', 'resume')")
    op.execute("UPDATE moderation_actions SET action = 'approve' WHERE action = 'override'")
    with op.batch_alter_table("moderation_actions") as batch:
        batch.drop_index("ix_moderation_actions_account")
        batch.drop_constraint(op.f("ck_moderation_actions_moderation_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_moderation_actions_moderation_kind"), ACTIONS_0001)
        batch.drop_constraint(
            op.f("fk_moderation_actions_draft_id_reply_drafts"), type_="foreignkey"
        )
        batch.create_foreign_key(
            op.f("fk_moderation_actions_draft_id_reply_drafts"),
            "reply_drafts",
            ["draft_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.alter_column("draft_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_constraint(op.f("fk_moderation_actions_account_id_accounts"), type_="foreignkey")
        batch.drop_column("actor_id")
        batch.drop_column("actor_kind")
        batch.drop_column("target")
        batch.drop_column("target_kind")
        batch.drop_column("account_id")

    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("persona", sa.Text(), nullable=True))
        batch.add_column(sa.Column("mode", sa.String(16), nullable=True))
        batch.create_check_constraint(op.f("ck_accounts_mode"), MODES_0001)
        batch.drop_constraint(op.f("uq_accounts_name"), type_="unique")
        batch.drop_column("name")
        batch.drop_column("health_at")
        batch.drop_column("health_note")
        batch.drop_column("health")
