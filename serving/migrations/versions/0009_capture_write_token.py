"""A write token per captured lead: whoever adds or deletes a row of the lead sets it.

The capture writer remembers, per lead, what it last stored in full and the token it wrote
(`serving.capture.writer`); a lead scored again with the same content is skipped only while the
token is unchanged. Every write that adds or deletes a row of the lead (any worker, an event,
the retention purge) sets a new random token in its transaction, and an erasure deletes the row,
so an unchanged token means the lead's rows are as they were.

Revision ID: 0009_capture_write_token
Revises: 0008_lead_funnel
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_capture_write_token"
down_revision = "0008_lead_funnel"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "captured_leads",
        sa.Column("write_token", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("captured_leads") as batch:
        batch.drop_column("write_token")
