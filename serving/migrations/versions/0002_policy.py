"""Policy versions: every qualification policy ever set, who set it, when, why and what it replaced.

Revision ID: 0002_policy
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_policy"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        # Versions are numbered by the writer (max + 1) so that two concurrent saves collide on
        # the primary key instead of silently interleaving.
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        # The policy this one replaced (0 = the model's default policy, kept here as JSON).
        sa.Column("previous_version", sa.Integer, nullable=False),
        sa.Column("previous_policy", sa.JSON, nullable=False),
        sa.Column("restored_version", sa.Integer, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("policy_versions")
