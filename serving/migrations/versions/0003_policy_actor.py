"""Policy versions name the person who made a change, beside the API key it came through.

An ops key is often shared by a team: `actor` is who said they made the change (the `X-Actor`
header or the `actor` field of the request, or the CLI user), `created_by` stays the key's name.

Revision ID: 0003_policy_actor
Revises: 0002_policy
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_policy_actor"
down_revision = "0002_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policy_versions") as table:
        table.add_column(sa.Column("actor", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policy_versions") as table:
        table.drop_column("actor")
