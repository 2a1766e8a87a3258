"""Decision policy: human handoff, bans, away messages, delayed sends and queue expiry.

conversations:
- `handed_off_at` (set while the chat is handed to people) and `away_sent_at` (the last away
  message outside business hours).
platform_users:
- `banned_at` (set while banned) and `strikes` (NOT NULL, default 0: messages a policy rule
  counted against the user).
outbox:
- the CHECK on `status` also allows 'cancelled' (a delayed send a moderator stopped).
reply_drafts:
- the CHECK on `status` also allows 'expired' (queued too long, nothing sent).
moderation_actions:
- the CHECK on `action` also allows 'reply', 'cancel', 'ban', 'unban', 'handoff', 'handback',
  'expire' and 'safe_reply', and 'erase' and 'prune' (erase-user and retention).

Downgrade drops the four columns (bans and handoffs are forgotten), turns cancelled sends into
failed ones and expired drafts into rejected ones, and deletes audit rows of the new policy and
moderation actions (0004 has no way to say them). The `erase` and `prune` rows are kept as they
are: they are the record that personal data was removed (GDPR Art. 17, 5(1)(e), proven under
Art. 5(2)), and no 0004 action can say that without misreporting it (`refused` with a note
would read as a refused erasure). So the CHECK that downgrade restores is 0004's list plus
'erase' and 'prune' (`ACTIONS_0004_KEPT`), and upgrading again replaces it with 0005's. Code of
the 0004 era never writes these two; its audit listing would stop at such a row (SQLAlchemy's
non-native enum refuses unknown values): upgrade, or read them with SQL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS_0004 = (
    "action IN ('approve', 'edit', 'reject', 'override', 'auto_send', 'pause', 'resume', "
    "'refused', 'relabel', 'promote', 'rollback')"
)
POLICY_ACTIONS = "'reply', 'cancel', 'ban', 'unban', 'handoff', 'handback', 'expire', 'safe_reply'"
PRIVACY_ACTIONS = "'erase', 'prune'"  # erase-user and retention (bot/privacy.py): never deleted
NEW_ACTIONS = POLICY_ACTIONS + ", " + PRIVACY_ACTIONS
ACTIONS_0005 = ACTIONS_0004[:-1] + ", " + NEW_ACTIONS + ")"
ACTIONS_0004_KEPT = ACTIONS_0004[:-1] + ", " + PRIVACY_ACTIONS + ")"
OUTBOX_0001 = "status IN ('pending', 'sending', 'sent', 'failed', 'unknown')"
OUTBOX_0005 = "status IN ('pending', 'sending', 'sent', 'failed', 'unknown', 'cancelled')"
DRAFTS_0001 = "status IN ('queued', 'approved', 'edited', 'rejected', 'sent', 'failed')"
DRAFTS_0005 = "status IN ('queued', 'approved', 'edited', 'rejected', 'sent', 'failed', 'expired')"


def _check(table: str, name: str, condition: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(name), type_="check")
        batch.create_check_constraint(op.f(name), condition)


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("handed_off_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("away_sent_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("platform_users") as batch:
        batch.add_column(sa.Column("banned_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("strikes", sa.Integer(), server_default="0", nullable=False))
    _check("outbox", "ck_outbox_outbox_status", OUTBOX_0005)
    _check("reply_drafts", "ck_reply_drafts_draft_status", DRAFTS_0005)
    _check("moderation_actions", "ck_moderation_actions_moderation_kind", ACTIONS_0005)


def downgrade() -> None:
    op.execute(f"DELETE FROM moderation_actions WHERE action IN ({POLICY_ACTIONS})")
    _check("moderation_actions", "ck_moderation_actions_moderation_kind", ACTIONS_0004_KEPT)
    op.execute("UPDATE reply_drafts SET status = 'rejected' WHERE status = 'expired'")
    _check("reply_drafts", "ck_reply_drafts_draft_status", DRAFTS_0001)
    op.execute("UPDATE outbox SET status = 'failed' WHERE status = 'cancelled'")
    _check("outbox", "ck_outbox_outbox_status", OUTBOX_0001)
    with op.batch_alter_table("platform_users") as batch:
        batch.drop_column("strikes")
        batch.drop_column("banned_at")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("away_sent_at")
        batch.drop_column("handed_off_at")
