"""Indexes for the funnel report from the database (`serving.report.funnel`).

- touchpoints by (lead_id, occurred_at, id), with channel and campaign on PostgreSQL: the first /
  last touch of a lead up to its close, and how many touches it had by then, are one index-only
  probe per lead instead of a sort of every touch;
- touchpoints by channel and by campaign: the values a report lists are read by a loose index
  scan (one probe per distinct value) instead of a scan of every touch;
- captured leads by created_at: reports over a period read only that period's leads.

Revision ID: 0007_funnel_indexes
Revises: 0004_capture
"""

from __future__ import annotations

from alembic import op

revision = "0007_funnel_indexes"
down_revision = "0006_exploration"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_lead_touchpoints_lead_occurred", "lead_touchpoints", ["lead_id", "occurred_at", "id"]),
    ("ix_lead_touchpoints_channel", "lead_touchpoints", ["channel"]),
    ("ix_lead_touchpoints_campaign", "lead_touchpoints", ["campaign"]),
    ("ix_captured_leads_created_at", "captured_leads", ["created_at"]),
)


# PostgreSQL keeps a touch's channel and campaign in the probe's index (index-only probes).
INCLUDE = {"ix_lead_touchpoints_lead_occurred": ["channel", "campaign"]}


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, postgresql_include=INCLUDE.get(name, []))


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
