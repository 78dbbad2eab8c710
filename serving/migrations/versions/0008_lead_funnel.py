"""The funnel's per-lead tables, backfilled from what is stored.

`lead_funnel` (one row per lead: creation, latest score, outcome, touches up to the close with
the first and last touch's channel and campaign), `lead_funnel_channels` and
`lead_funnel_campaigns` (each lead's linear credit per channel or campaign, with a copy of its
facts) and `lead_funnel_attributes` (each lead's latest value
of each attribute): the writers keep them up to date (`serving.report.funnel_tables`), so
`GET /v1/reports/funnel` groups one narrow row per lead instead of deriving each lead's facts
from the capture tables and the score log at every request.

The backfill derives them from the stored leads, touchpoints, attributes, outcomes and score log
with the service's own refresh (`refresh_all`), so the two cannot disagree. A later migration
that changes these tables must give this one a frozen copy of that code.

Revision ID: 0008_lead_funnel
Revises: 0007_funnel_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_lead_funnel"
down_revision = "0007_funnel_indexes"
branch_labels = None
depends_on = None

CREDIT_TABLES = ("lead_funnel_channels", "lead_funnel_campaigns")


def upgrade() -> None:
    op.create_table(
        "lead_funnel",
        sa.Column("lead_id", sa.String(200), primary_key=True),
        sa.Column("captured", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("touches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_channel", sa.String(32), nullable=True),
        sa.Column("first_campaign", sa.Text, nullable=True),
        sa.Column("last_channel", sa.String(32), nullable=True),
        sa.Column("last_campaign", sa.Text, nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("score", sa.Integer, nullable=True),
        sa.Column("grade", sa.String(1), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("exploration", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("won", sa.Boolean, nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("amount", sa.Float, nullable=True),
    )
    op.create_index("ix_lead_funnel_created_at", "lead_funnel", ["created_at"])
    for table in CREDIT_TABLES:
        op.create_table(
            table,
            sa.Column("lead_id", sa.String(200), nullable=False),
            sa.Column("value", sa.Text, nullable=True),
            sa.Column("weight", sa.Float, nullable=False),
            sa.Column("touched", sa.Boolean, nullable=False),
            sa.Column("captured", sa.Boolean, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("sent", sa.Boolean, nullable=False),
            sa.Column("won", sa.Boolean, nullable=True),
            sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("amount", sa.Float, nullable=True),
        )
        op.create_index(f"ix_{table}_lead_id", table, ["lead_id"])
    op.create_table(
        "lead_funnel_attributes",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("value", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("name", "lead_id"),
    )
    op.create_index("ix_lead_funnel_attributes_lead_id", "lead_funnel_attributes", ["lead_id"])

    from serving.report.funnel_tables import refresh_all

    refresh_all(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_lead_funnel_attributes_lead_id", table_name="lead_funnel_attributes")
    op.drop_table("lead_funnel_attributes")
    for table in reversed(CREDIT_TABLES):
        op.drop_index(f"ix_{table}_lead_id", table_name=table)
        op.drop_table(table)
    op.drop_index("ix_lead_funnel_created_at", table_name="lead_funnel")
    op.drop_table("lead_funnel")
