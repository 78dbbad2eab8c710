"""The moment each score is for: `as_of` in the score log.

A request may score a lead as of a past moment (`as_of`: a CRM backfilling, a replay of history).
The log kept only when it scored (`scored_at`), so what was learned from it read a replayed
score as one made today: `training.ages_from_traffic` took a 2023 lead replayed now as scored at
three years of age (capped at 90 days). Rows written before this migration have no `as_of`;
readers take `scored_at` for them, what it was then.

Revision ID: 0012_score_log_as_of
Revises: 0011_score_log_once
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_score_log_as_of"
down_revision = "0011_score_log_once"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("score_log", sa.Column("as_of", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("score_log") as batch:
        batch.drop_column("as_of")
