"""Best-of-n: every sampled candidate of a draft, with its score and why it was dropped.

draft_candidates (new):
- `draft_id` foreign key to reply_drafts ON DELETE CASCADE; `rank` 0 is the best; the unique
  (draft_id, rank) constraint (uq_draft_candidates_draft_id_rank) is also the index that
  fetches a draft's candidates;
- `text` (cleaned) and `raw_text`, `score` (mean log-probability per token), `new_tokens`
  (NOT NULL, default 0), `created_at`;
- `dropped` VARCHAR(16) NULL: a DropReason value, NULL for the candidate that was used. No
  CHECK on purpose: a new reason needs no migration (the code validates it when reading).

Existing drafts get no rows: they were drafted from one sample and `Draft.candidates` is empty
for them. Downgrade drops the table and with it every candidate; drafts are untouched.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "draft_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("raw_text", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("new_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dropped", sa.String(16), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_candidates")),
        sa.ForeignKeyConstraint(
            ["draft_id"],
            ["reply_drafts.id"],
            name=op.f("fk_draft_candidates_draft_id_reply_drafts"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("draft_id", "rank", name=op.f("uq_draft_candidates_draft_id_rank")),
    )


def downgrade() -> None:
    op.drop_table("draft_candidates")
