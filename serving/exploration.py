"""Reads what the exploration estimate needs from the service's database: each lead's latest
score of a period (decision, exploration flag) and its outcome, in one query; the estimate is
`features.report.exploration`'s.

The database ranks each lead's scores of the period (by the (lead_id, scored_at) index) and
returns only the latest of the leads the threshold held back, joined with their outcome: the
rows that come back are the ones the estimate counts, not the whole log.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from features.report.exploration import ExplorationEstimate, exploration_estimate
from serving.db import as_utc, outcomes, score_log

WEEK = timedelta(days=7)


def held_back_leads(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """The latest score in [start, end) of each lead it held back (nurture or exploration):
    lead_id, scored_at, decision, exploration, won (None: no outcome)."""
    ranked = (
        sa.select(
            score_log.c.lead_id,
            score_log.c.scored_at,
            score_log.c.decision,
            score_log.c.exploration,
            sa.func.row_number()
            .over(
                partition_by=score_log.c.lead_id,
                order_by=(score_log.c.scored_at.desc(), score_log.c.id.desc()),
            )
            .label("newest"),
        )
        .where(score_log.c.scored_at >= start, score_log.c.scored_at < end)
        .subquery()
    )
    query = (
        sa.select(
            ranked.c.lead_id,
            ranked.c.scored_at,
            ranked.c.decision,
            ranked.c.exploration,
            outcomes.c.won,
        )
        .select_from(ranked.outerjoin(outcomes, outcomes.c.lead_id == ranked.c.lead_id))
        .where(
            ranked.c.newest == 1,
            sa.or_(ranked.c.decision == "nurture", ranked.c.exploration.is_(True)),
        )
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return pd.DataFrame(
        rows, columns=["lead_id", "scored_at", "decision", "exploration", "won"]
    ).astype({"exploration": bool})


def exploration_report(engine: Engine, start: datetime, end: datetime) -> ExplorationEstimate:
    """The estimate for scores given in [start, end)."""
    leads = held_back_leads(engine, as_utc(start), as_utc(end))
    known = leads[leads["won"].notna()]
    return exploration_estimate(
        leads[["lead_id", "scored_at", "decision", "exploration"]],
        pd.DataFrame({"lead_id": known["lead_id"], "won": known["won"].astype(bool)}),
        (end - start) / WEEK,
    )
