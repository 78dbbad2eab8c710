"""The score log says which leads went to sales by exploration, and finds a lead's latest score
by index.

`exploration` marks the rows the policy's exploration rate sent to sales from below the threshold
(`features.policy.exploration`): the funnel's estimate of what the threshold misses reads them.
Existing rows get false (no exploration existed before). The index on (lead_id, scored_at) serves
`POST /v1/score`'s one query for each lead's previous score (`serving.trend`).

Revision ID: 0006_exploration
Revises: 0004_capture
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_exploration"
down_revision = "0005_score_log_dead_letter"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN with a default: no table copy on SQLite, no rewrite on PostgreSQL 11+.
    op.add_column(
        "score_log",
        sa.Column("exploration", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_score_log_lead_id_scored_at", "score_log", ["lead_id", "scored_at"])


def downgrade() -> None:
    op.drop_index("ix_score_log_lead_id_scored_at", table_name="score_log")
    with op.batch_alter_table("score_log") as table:
        table.drop_column("exploration")
