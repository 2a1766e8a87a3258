"""Web dashboard: its users, one-time login links, and the topics the scheduled job fits.

web_users:
- a moderator or operator of the dashboard: `name` (unique), an argon2 `password_hash`, `role`,
  `accounts` (a JSON list of account names; NULL means every account), and optionally the
  `platform` + `platform_user_id` of their own private chat, where one-time login links go.
web_login_links:
- a one-time login link: only the SHA-256 of its token is stored, with when it expires and
  when it was used (single use).
topic_runs:
- one fit of the topics job for one account: the window of inbound messages it saw, how many,
  and the topics (top words, size, trend, example messages) as JSON.

Downgrade drops the three tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("accounts", sa.JSON(), nullable=True),
        sa.Column("platform", sa.String(32), nullable=True),
        sa.Column("platform_user_id", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("disabled_at", TZ, nullable=True),
        sa.CheckConstraint("role IN ('moderator', 'operator')", name=op.f("ck_web_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_users")),
        sa.UniqueConstraint("name", name=op.f("uq_web_users_name")),
    )
    op.create_table(
        "web_login_links",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("used_at", TZ, nullable=True),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["web_users.id"],
            name=op.f("fk_web_login_links_user_id_web_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_login_links")),
    )
    op.create_table(
        "topic_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("fitted_at", TZ, nullable=False),
        sa.Column("window_start", TZ, nullable=False),
        sa.Column("window_end", TZ, nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_topic_runs_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topic_runs")),
    )
    op.create_index("ix_topic_runs_account", "topic_runs", ["account_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_topic_runs_account", table_name="topic_runs")
    op.drop_table("topic_runs")
    op.drop_table("web_login_links")
    op.drop_table("web_users")
