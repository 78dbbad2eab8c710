"""Each score once in the score log: a unique (lead_id, scored_at, request_id) index.

The score log's writer retries a batch when the database goes away during its commit. When the
commit had in fact gone through, the retry wrote the batch a second time (seen under a cut
connection: five leads of one request logged twice). With this index the writer's insert skips
a row already there (`ON CONFLICT DO NOTHING`), so a retried or replayed batch is written once.

The index replaces 0006's (lead_id, scored_at) index, whose lookups it serves with the same
first two columns: each insert still keeps one index on the lead. Rows a retry had already
doubled are removed first (the copy with the higher id), or the index could not be built.

Revision ID: 0011_score_log_once
Revises: 0010_score_log_lead_index
"""

from __future__ import annotations

from alembic import op

revision = "0011_score_log_once"
down_revision = "0010_score_log_lead_index"
branch_labels = None
depends_on = None

# SQLite and PostgreSQL both read this form (no alias on the DELETE's table).
_DROP_COPIES = """
DELETE FROM score_log WHERE EXISTS (
    SELECT 1 FROM score_log AS earlier
    WHERE earlier.lead_id = score_log.lead_id
      AND earlier.scored_at = score_log.scored_at
      AND earlier.request_id = score_log.request_id
      AND earlier.id < score_log.id
)
"""


def upgrade() -> None:
    op.execute(_DROP_COPIES)
    op.create_index(
        "uq_score_log_lead_scored_request",
        "score_log",
        ["lead_id", "scored_at", "request_id"],
        unique=True,
    )
    op.drop_index("ix_score_log_lead_id_scored_at", table_name="score_log")


def downgrade() -> None:
    op.create_index("ix_score_log_lead_id_scored_at", "score_log", ["lead_id", "scored_at"])
    op.drop_index("uq_score_log_lead_scored_request", table_name="score_log")
