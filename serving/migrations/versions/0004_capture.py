"""Capture: what the service received of each lead (attributes, touchpoints, creation), each row
once with the moment it happened and the moment it first arrived, and the erasure audit.

Revision ID: 0004_capture
Revises: 0003_policy_actor
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_capture"
down_revision = "0003_policy_actor"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "captured_leads",
        sa.Column("lead_id", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_captured_leads_received_at", "captured_leads", ["received_at"])
    op.create_table(
        "lead_attributes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("value", sa.JSON, nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        # a hash of (name, value, changed_at): NULL-safe, unlike a composite unique key
        sa.Column("dedup_key", sa.String(32), nullable=False),
        sa.UniqueConstraint("lead_id", "dedup_key", name="uq_lead_attributes_dedup"),
    )
    op.create_index("ix_lead_attributes_lead_id", "lead_attributes", ["lead_id"])
    op.create_index("ix_lead_attributes_received_at", "lead_attributes", ["received_at"])
    op.create_table(
        "lead_touchpoints",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("activity", sa.String(32), nullable=False),
        sa.Column("campaign", sa.Text, nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        # a hash of (occurred_at, channel, activity, campaign, value)
        sa.Column("dedup_key", sa.String(32), nullable=False),
        sa.UniqueConstraint("lead_id", "dedup_key", name="uq_lead_touchpoints_dedup"),
    )
    op.create_index("ix_lead_touchpoints_lead_id", "lead_touchpoints", ["lead_id"])
    op.create_index("ix_lead_touchpoints_received_at", "lead_touchpoints", ["received_at"])
    op.create_table(
        "erasures",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("lead_id_sha256", sa.String(64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_by", sa.String(100), nullable=False),
        sa.Column("rows_deleted", sa.JSON, nullable=False),
    )
    op.create_index("ix_erasures_lead_id_sha256", "erasures", ["lead_id_sha256"])


def downgrade() -> None:
    op.drop_index("ix_erasures_lead_id_sha256", table_name="erasures")
    op.drop_table("erasures")
    for table in ("lead_touchpoints", "lead_attributes"):
        op.drop_index(f"ix_{table}_received_at", table_name=table)
        op.drop_index(f"ix_{table}_lead_id", table_name=table)
        op.drop_table(table)
    op.drop_index("ix_captured_leads_received_at", table_name="captured_leads")
    op.drop_table("captured_leads")
