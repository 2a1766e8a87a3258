"""The learning loop: per-account adapter registry, labelled examples, leases, aborted runs.

adapters:
- `account_id` (NULL for rows from before; foreign key to accounts ON DELETE CASCADE),
  `version` (NOT NULL, default 1), `data_hash`, `config` (JSON), `parent_id` (self foreign key
  ON DELETE SET NULL), `retired_at`; index (account_id, kind, status) for "the active one".
training_runs:
- `account_id` (foreign key to accounts ON DELETE CASCADE); the CHECK on `status`
  (ck_training_runs_run_status) also allows 'aborted'.
moderation_actions:
- the CHECK on `action` also allows 'relabel', 'promote' and 'rollback'.
label_examples (new): moderators' label corrections and imported labelled texts.
leases (new): one row per named lease (the nightly runner).

Downgrade drops the two new tables with their rows, the new adapter and run columns, and turns
rows with the new values back into ones 0003 allows: aborted runs become failed, and audit rows
of the three new actions are deleted (0003 has no way to say them).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS_0002 = (
    "action IN ('approve', 'edit', 'reject', 'override', 'auto_send', 'pause', 'resume', 'refused')"
)
ACTIONS_0004 = (
    "action IN ('approve', 'edit', 'reject', 'override', 'auto_send', 'pause', 'resume', "
    "'refused', 'relabel', 'promote', 'rollback')"
)
RUNS_0001 = "status IN ('running', 'succeeded', 'failed')"
RUNS_0004 = "status IN ('running', 'succeeded', 'failed', 'aborted')"


def _created_at() -> sa.Column[datetime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    with op.batch_alter_table("adapters") as batch:
        batch.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("data_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("config", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            op.f("fk_adapters_account_id_accounts"),
            "accounts",
            ["account_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_foreign_key(
            op.f("fk_adapters_parent_id_adapters"),
            "adapters",
            ["parent_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_adapters_account_kind_status", ["account_id", "kind", "status"])

    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_training_runs_account_id_accounts"),
            "accounts",
            ["account_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.drop_constraint(op.f("ck_training_runs_run_status"), type_="check")
        batch.create_check_constraint(op.f("ck_training_runs_run_status"), RUNS_0004)

    with op.batch_alter_table("moderation_actions") as batch:
        batch.drop_constraint(op.f("ck_moderation_actions_moderation_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_moderation_actions_moderation_kind"), ACTIONS_0004)

    op.create_table(
        "label_examples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_examples")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_label_examples_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_label_examples_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("message_id", "task", name=op.f("uq_label_examples_message_id_task")),
    )
    op.create_index("ix_label_examples_account_task", "label_examples", ["account_id", "task"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_label_examples_account_task", table_name="label_examples")
    op.drop_table("label_examples")

    op.execute("DELETE FROM moderation_actions WHERE action IN ('relabel', 'promote', 'rollback')")
    with op.batch_alter_table("moderation_actions") as batch:
        batch.drop_constraint(op.f("ck_moderation_actions_moderation_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_moderation_actions_moderation_kind"), ACTIONS_0002)

    op.execute("UPDATE training_runs SET status = 'failed' WHERE status = 'aborted'")
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_constraint(op.f("ck_training_runs_run_status"), type_="check")
        batch.create_check_constraint(op.f("ck_training_runs_run_status"), RUNS_0001)
        batch.drop_constraint(op.f("fk_training_runs_account_id_accounts"), type_="foreignkey")
        batch.drop_column("account_id")

    with op.batch_alter_table("adapters") as batch:
        batch.drop_index("ix_adapters_account_kind_status")
        batch.drop_constraint(op.f("fk_adapters_parent_id_adapters"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_adapters_account_id_accounts"), type_="foreignkey")
        batch.drop_column("retired_at")
        batch.drop_column("parent_id")
        batch.drop_column("config")
        batch.drop_column("data_hash")
        batch.drop_column("version")
        batch.drop_column("account_id")
