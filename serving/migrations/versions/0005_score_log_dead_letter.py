"""Dead letters: the records the score log or the capture could not store because the database
refused them (the rest of their batch was written), kept with the error for an operator.

Revision ID: 0005_score_log_dead_letter
Revises: 0004_capture
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_score_log_dead_letter"
down_revision = "0004_capture"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
    )
    op.create_index("ix_dead_letters_lead_id", "dead_letters", ["lead_id"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_lead_id", table_name="dead_letters")
    op.drop_table("dead_letters")
