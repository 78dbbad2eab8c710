"""What policy simulation and the /ops page compute from: the champion's holdout and the score log.

Reading (the model in memory, the database) is kept apart from computing (`features.policy`):
`holdout_basis` and `recent_basis` read, `simulate` and `monitoring` only combine numbers.

- **holdout**: the champion's held-out leads with their true outcome (`probability`, `label`,
  `as_of`) and how many weeks of leads they cover (`metadata["holdout_weeks"]`): precision,
  recall and wins are observed.
- **recent**: the latest score of each lead scored in the last `days` days: volume is today's
  traffic; precision, recall and wins are expectations from the calibrated probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from features.policy.monitoring import (
    OUTLOOK_MEANS,
    outlook_by_grade,
    population_stability_index,
    win_rate_by_grade,
)
from features.policy.rules import (
    Policy,
    PolicyError,
    ValueNeeded,
    apply_policy,
    score_from_probability,
)
from features.policy.thresholds import (
    at_capacity,
    choose_threshold,
    choose_value_threshold,
    threshold_table,
    value_table,
)
from serving.db import as_utc, outcomes, score_log, utcnow

if TYPE_CHECKING:
    from serving.model_store import LoadedModel

MAX_RECENT_ROWS = 500_000


class BasisUnavailable(LookupError):
    """No data to simulate on; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class Basis:
    source: str  # "holdout" | "recent"
    probabilities: np.ndarray
    labels: np.ndarray | None
    weeks: float
    description: str
    # probability x expected deal amount per lead (None: no deal value model, or recent scores)
    expected_values: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "leads": int(self.probabilities.size),
            "weeks": round(self.weeks, 4),
            "leads_per_week": round(self.probabilities.size / self.weeks, 4)
            if self.weeks
            else None,
            "wins": None if self.labels is None else int(self.labels.sum()),
            "observed_outcomes": self.labels is not None,
            "expected_values": self.expected_values is not None,
            "description": self.description,
        }


def model_default_policy(loaded: LoadedModel | None) -> Policy:
    """The loaded model's own policy (from its metadata), or the built-in default."""
    policy = getattr(getattr(loaded, "scorer", None), "policy", None)
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, dict):
        try:
            return Policy.model_validate(policy)
        except ValueError:
            pass
    return _DEFAULT


_DEFAULT = Policy()


def holdout_basis(current: LoadedModel | None) -> Basis:
    """The held-out leads shipped inside `current` (the model being served)."""
    if current is None:
        raise BasisUnavailable(
            "no model is loaded yet, so there is no holdout to simulate on; check /readyz, or "
            "simulate on recent scores with source=recent"
        )
    scorer = current.scorer
    holdout = getattr(scorer, "holdout", None)
    if holdout is None or len(holdout) == 0:
        raise BasisUnavailable(
            f"model {current.name} version {current.version} carries no holdout scores; retrain it "
            "with `leadscore train`, or simulate on recent scores with source=recent"
        )
    probabilities = holdout["probability"].to_numpy(dtype=float)
    labels = holdout["label"].to_numpy(dtype=float)
    weeks = holdout_weeks(getattr(scorer, "metadata", None) or {}, holdout)
    values = (
        holdout["expected_value"].to_numpy(dtype=float)
        if "expected_value" in holdout.columns
        else None
    )
    return Basis(
        "holdout",
        probabilities,
        labels,
        weeks,
        f"holdout of model {current.name} version {current.version}: {len(holdout)} leads "
        f"over {weeks:.1f} weeks with known outcomes",
        values,
    )


def holdout_weeks(metadata: dict, holdout: pd.DataFrame) -> float:
    """Weeks of leads the holdout covers: from the metadata, else the span of `as_of`, else 1."""
    given = metadata.get("holdout_weeks")
    try:
        weeks = math.nan if given is None else float(given)
        if math.isfinite(weeks) and weeks > 0:
            return weeks
    except (TypeError, ValueError):
        pass
    if "as_of" in holdout.columns and holdout["as_of"].notna().any():
        span = (holdout["as_of"].max() - holdout["as_of"].min()) / pd.Timedelta(days=7)
        if span > 0:
            return float(span)
    return 1.0


def read_recent_scores(engine: Engine, days: float) -> pd.DataFrame:
    """Latest score per lead scored in the last `days` days: lead_id, probability, grade, scored_at."""
    since = utcnow() - timedelta(days=days)
    query = (
        sa.select(
            score_log.c.lead_id, score_log.c.probability, score_log.c.grade, score_log.c.scored_at
        )
        .where(score_log.c.scored_at >= since)
        .order_by(score_log.c.scored_at.desc(), score_log.c.id.desc())
        .limit(MAX_RECENT_ROWS)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    frame = pd.DataFrame(rows, columns=["lead_id", "probability", "grade", "scored_at"])
    latest = frame.drop_duplicates("lead_id", keep="first").reset_index(drop=True)
    # The oldest score in the window (of any lead) tells how much traffic the window holds.
    latest.attrs["first_scored_at"] = as_utc(rows[-1].scored_at) if rows else None
    return latest


def recent_basis(engine: Engine, days: float) -> Basis:
    frame = read_recent_scores(engine, days)
    if frame.empty:
        raise BasisUnavailable(
            f"no leads were scored in the last {days:g} days; simulate on the holdout "
            "(source=holdout) or widen `days`"
        )
    first = frame.attrs["first_scored_at"]
    # Weeks actually covered (a service running for 3 days has 3 days of traffic), at least a day.
    covered = (utcnow() - first) / timedelta(days=7)
    weeks = min(max(covered, 1 / 7), days / 7)
    return Basis(
        "recent",
        frame["probability"].to_numpy(dtype=float),
        None,
        weeks,
        f"latest score of {len(frame)} leads scored in the last {days:g} days "
        f"({weeks:.1f} weeks of traffic); outcomes not known yet, so precision, recall and wins "
        "are expected values from the calibrated probabilities",
    )


def _row(table: pd.DataFrame, threshold: float) -> dict[str, Any]:
    # Scores are integers: `score >= 42.5` sends the same leads as `score >= 43`.
    index = int(min(max(math.ceil(threshold - 1e-9), 0), 100))
    return _clean(table.iloc[index].to_dict()) | {"threshold": index}


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in record.items():
        value = float(value)
        out[key] = None if not math.isfinite(value) else round(value, 6)
    return out


def no_values_message(basis: Basis) -> str:
    """Why `basis` cannot be ranked by expected value, and what to do."""
    if basis.source == "recent":
        return (
            "recent scores do not record an expected value, so they cannot be ranked by it: "
            "simulate rank_by=expected_value on the holdout (source=holdout)"
        )
    return (
        f"the {basis.description.split(':')[0]} has no expected values (rank_by: "
        "expected_value needs a model with a deal value model): retrain with deal amounts (an "
        "outcomes file with an amount column), or simulate with rank_by=probability"
    )


def _value_row(table: pd.DataFrame, row: pd.Series) -> dict[str, Any]:
    """A value-table row for the answer: rounded figures and the exact `value_threshold`."""
    return _clean(row.to_dict()) | {
        "threshold": None,
        "value_threshold": float(row["value_threshold"]),
    }


def _current_by_value(vtable: pd.DataFrame, value_threshold: float) -> dict[str, Any]:
    """What a value threshold sends: the row of the lowest expected value at or above it."""
    at_or_above = np.flatnonzero(vtable["value_threshold"].to_numpy() >= value_threshold)
    if at_or_above.size == 0:  # nobody is sent
        empty = {c: 0.0 for c in vtable.columns} | {"precision": None}
        return empty | {"threshold": None, "value_threshold": value_threshold}
    return _value_row(vtable, vtable.iloc[int(at_or_above[-1])]) | {
        "value_threshold": value_threshold
    }


def simulate(
    basis: Basis,
    current: Policy,
    *,
    by: str | None = None,
    value: float | None = None,
    cost_per_lead: float = 1.0,
    threshold: float | None = None,
    include_table: bool = True,
    capacity: float | None = None,
    rank_by: str | None = None,
) -> dict[str, Any]:
    """The threshold table on `basis`, the row of the current policy, and the chosen threshold.

    `rank_by` (default: the policy's) says what fills sales' capacity: ``probability`` (a score
    threshold, `features.policy.thresholds.choose_threshold`) or ``expected_value`` (a value
    threshold in the policy's `currency`, chosen by capacity or by value,
    `choose_value_threshold`). Choosing by value keeps to `capacity` leads a week (default: the
    policy's `weekly_capacity`). With expected values on the basis, every row carries
    ``expected_revenue`` (expected value sent a week) and ``rankings`` compares both rankings
    at the same leads a week. Raises `features.policy.PolicyError` when the criterion cannot be
    met.
    """
    rank_by = rank_by or current.rank_by
    values = basis.expected_values
    if rank_by == "expected_value" and values is None:
        raise ValueNeeded(no_values_message(basis))
    table = threshold_table(basis.probabilities, basis.labels, basis.weeks, values)
    vtable = (
        None
        if values is None
        else value_table(values, basis.probabilities, basis.labels, basis.weeks)
    )
    if capacity is None:
        capacity = current.weekly_capacity
    chosen = None
    if rank_by == "expected_value" and by is not None:
        assert vtable is not None
        if by == "capacity":
            if value is None:
                raise PolicyError("choosing by capacity needs a value: the leads a week")
            capacity = value
        row = choose_value_threshold(vtable, by, capacity, cost_per_lead)
        chosen = _value_row(vtable, row)
    elif by is not None:
        if value is None:
            raise PolicyError(f"choosing by {by} needs a value")
        limit = capacity if by == "value" else None
        row = choose_threshold(table, by, value, cost_per_lead=cost_per_lead, capacity=limit)
        chosen = _row(table, float(row["threshold"]))
    elif threshold is not None:
        chosen = _row(table, threshold)
    if current.rank_by == "expected_value" and vtable is not None:
        current_row = _current_by_value(vtable, float(current.value_threshold or 0.0))
    else:
        current_row = _row(table, current.sales_threshold)
    result: dict[str, Any] = {
        "basis": basis.summary(),
        "current": current_row
        | {"sales_threshold": current.sales_threshold, "rank_by": current.rank_by},
        "rank_by": rank_by,
        "chosen": chosen,
        "proposed_policy": None,
        "currency": current.currency,
        "weekly_capacity": capacity,
        "rankings": None,
    }
    if by == "value" and chosen is not None:
        wins_worth = (
            chosen["expected_revenue"]
            if rank_by == "expected_value"
            else chosen["expected_wins"] * float(value or 0.0)
        )
        result["chosen"]["net_value_per_week"] = round(
            wins_worth - chosen["leads_per_week"] * cost_per_lead, 6
        )
    if vtable is not None:
        limit = capacity
        if limit is None:
            limit = (chosen or current_row)["leads_per_week"]
        result["rankings"] = _rankings(table, vtable, float(limit or 0.0))
    if chosen is not None:
        # a score threshold given to evaluate proposes ranking by probability, whatever rank_by
        by_value = chosen.get("value_threshold") is not None
        update: dict[str, Any] = {"rank_by": "expected_value" if by_value else "probability"}
        if by_value:
            update["value_threshold"] = chosen["value_threshold"]
        else:
            new_sales = float(chosen["threshold"])
            update["sales_threshold"] = new_sales
            update["nurture_threshold"] = min(current.nurture_threshold, new_sales)
        if capacity is not None:
            update["weekly_capacity"] = capacity
        # Fields without a value are left out: the proposal is a valid PUT /v1/policy body.
        proposed = current.model_copy(update=update).model_dump(mode="json")
        result["proposed_policy"] = {k: v for k, v in proposed.items() if v is not None}
    if include_table:
        result["table"] = {
            column: [None if not math.isfinite(v) else round(float(v), 6) for v in table[column]]
            for column in table.columns
            if column != "threshold"
        }
        result["table"] = {"threshold": table["threshold"].astype(int).tolist()} | result["table"]
    return result


def value_threshold_for_capacity(basis: Basis, capacity: float) -> float:
    """The value threshold whose leads of highest expected value fill `capacity` leads a week
    on `basis` (`ValueNeeded` without expected values, `PolicyError` when none fits)."""
    if basis.expected_values is None:
        raise ValueNeeded(no_values_message(basis))
    table = value_table(basis.expected_values, basis.probabilities, basis.labels, basis.weeks)
    return float(choose_value_threshold(table, "capacity", float(capacity))["value_threshold"])


def _rankings(table: pd.DataFrame, vtable: pd.DataFrame, capacity: float) -> dict[str, Any]:
    """Both rankings at `capacity` leads a week: the most leads each sends within it, and what
    they bring (expected wins, expected revenue a week)."""
    by_probability = at_capacity(table, capacity)
    by_value = at_capacity(vtable, capacity)
    return {
        "leads_per_week": round(capacity, 6),
        "probability": None
        if by_probability is None
        else _clean(by_probability.to_dict()) | {"threshold": int(by_probability["threshold"])},
        "expected_value": None if by_value is None else _value_row(vtable, by_value),
    }


def read_outcomes_with_grades(engine: Engine) -> pd.DataFrame:
    """Leads with a reported outcome and the grade of their latest score before it closed:
    every lead scored at least once before its close counts, whatever came after (a score
    logged after the close says nothing about how the grade predicted it).

    `attrs["reported"]`: outcomes reported in all; `attrs["scored"]`: of those, leads scored at
    all (the others were never scored, or only after they closed: not counted, and said so)."""
    latest = (
        sa.select(
            score_log.c.lead_id,
            sa.func.max(score_log.c.scored_at).label("scored_at"),
        )
        .join(outcomes, outcomes.c.lead_id == score_log.c.lead_id)
        .where(score_log.c.scored_at <= outcomes.c.closed_at)
        .group_by(score_log.c.lead_id)
        .subquery()
    )
    query = (
        sa.select(score_log.c.lead_id, score_log.c.grade, score_log.c.scored_at, outcomes.c.won)
        .join(
            latest,
            (latest.c.lead_id == score_log.c.lead_id)
            & (latest.c.scored_at == score_log.c.scored_at),
        )
        .join(outcomes, outcomes.c.lead_id == score_log.c.lead_id)
        .order_by(score_log.c.lead_id, score_log.c.id.desc())
        .limit(MAX_RECENT_ROWS)
    )
    scored = (
        sa.select(sa.func.count(sa.distinct(outcomes.c.lead_id)))
        .select_from(outcomes)
        .join(score_log, score_log.c.lead_id == outcomes.c.lead_id)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
        reported = connection.execute(sa.select(sa.func.count()).select_from(outcomes)).scalar()
        scored_at_all = connection.execute(scored).scalar()
    frame = pd.DataFrame(rows, columns=["lead_id", "grade", "scored_at", "won"])
    frame = frame.drop_duplicates("lead_id", keep="first").reset_index(drop=True)
    frame.attrs["reported"] = int(reported or 0)
    frame.attrs["scored"] = int(scored_at_all or 0)
    return frame


def monitoring(
    holdout: Basis | None, recent: pd.DataFrame, graded_outcomes: pd.DataFrame, days: float
) -> dict[str, Any]:
    """Recent score distribution against the holdout (PSI) and win rate by grade."""
    result: dict[str, Any] = {"days": days, "recent_leads": int(len(recent))}
    if holdout is not None and len(recent):
        psi, bins = population_stability_index(
            holdout.probabilities, recent["probability"].to_numpy(float)
        )
        result["psi"] = round(psi, 6)
        result["psi_status"] = (
            "stable"
            if psi < 0.1
            else "watch: moderate shift"
            if psi < 0.25
            else "shifted: check the model"
        )
        result["bins"] = {c: [round(float(v), 6) for v in bins[c]] for c in bins.columns}
    else:
        result["psi"] = None
        result["psi_status"] = (
            "no model holdout to compare with"
            if holdout is None
            else f"no leads scored in the last {days:g} days yet"
        )
        result["bins"] = None
    if len(recent):
        result["recent_grades"] = {
            g: int((recent["grade"] == g).sum()) for g in ("A", "B", "C", "D")
        }
    table = win_rate_by_grade(
        graded_outcomes["grade"].to_numpy(object), graded_outcomes["won"].to_numpy(float)
    )
    result["win_rate_by_grade"] = [
        {
            "grade": r.grade,
            "leads": int(r.leads),
            "wins": int(r.wins),
            "win_rate": None if not math.isfinite(r.win_rate) else round(float(r.win_rate), 6),
        }
        for r in table.itertuples()
    ]
    graded = int(len(graded_outcomes))
    reported = int(graded_outcomes.attrs.get("reported", graded))
    scored = int(graded_outcomes.attrs.get("scored", graded))
    result["outcomes_known"] = graded  # leads with an outcome and a score before it closed
    result["outcomes_reported"] = reported
    result["outcomes_scored_only_after_close"] = max(scored - graded, 0)
    result["outcomes_never_scored"] = max(reported - scored, 0)
    return result


def holdout_by_grade(current: LoadedModel | None, policy: Policy) -> list[dict[str, Any]] | None:
    """What each grade of `policy` holds on the model's holdout: leads, share, observed win
    rate, and with the model's deal value and time-to-close parts the mean expected value, the
    mean chance of a win within 30/60/90 days and the median days to close (None: no holdout)."""
    holdout = getattr(getattr(current, "scorer", None), "holdout", None)
    if holdout is None or len(holdout) == 0:
        return None
    probabilities = holdout["probability"].to_numpy(dtype=float)
    grades, _, _ = apply_policy(score_from_probability(probabilities), None, policy.model_copy(
        update={"rank_by": "probability"}  # grades are on the score whatever fills sales
    ))  # fmt: skip
    columns = {
        name: holdout[name].to_numpy(dtype=float)
        for name in (*OUTLOOK_MEANS, "median_days_to_close")
        if name in holdout.columns
    }
    table = outlook_by_grade(grades, holdout["label"].to_numpy(dtype=float), columns)
    return [
        {
            key: value
            if isinstance(value, str)
            else int(value)
            if key == "leads"
            else (None if not math.isfinite(value) else round(float(value), 6))
            for key, value in row.items()
        }
        for row in table.to_dict("records")
    ]
