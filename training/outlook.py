"""The step after the win model: how much (deal value) and how soon (time to close).

`fit_outlook(fitted, data, config, seed)` takes the fitted scorer's featurizer and its
training/holdout split by lead, builds every snapshot of a lead still open at its moment (the
censored ones too, `training.timing.open_snapshots`), and fits on the training leads' snapshots
(the leads of the holdout examples are held out; leads with no settled snapshot, the newest, are
training leads: their watched periods are what censoring is about):

- the deal value model (`training.value`) on won deals with an amount;
- the time-to-close model (`training.timing`) on every watched period.

Holdout figures: value on the holdout's won deals, timing per horizon on the holdout leads' open
snapshots whose label for that horizon is known, scored with the evaluation model (the step runs
before the served model is swapped for a refit). Thin data leaves a model out with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.model.timing import CloseTimingModel, lead_ages
from features.model.value import DealValueModel
from features.snapshots import attach_attributes
from training.data import sample_leads_rows
from training.models import without_wide_codes
from training.timing import DAY_NS, fit_timing_model, open_snapshots, timing_metrics
from training.value import MIN_DEALS, fit_value_model, value_metrics

if TYPE_CHECKING:
    from features.data.loading import LeadData
    from training.train import Fitted, RunConfig

MAX_TIMING_SNAPSHOTS = 40_000  # open snapshots the time-to-close model learns from (sampled)
# won deals' snapshots the deal value model learns from (a sample of the won leads): at a million
# demo leads, all 270,000 made its design matrix and ridge fits the run's peak memory (6.5 GB)
MAX_VALUE_SNAPSHOTS = 60_000
MIN_TIMING_WINS = 30


@dataclass
class Outlook:
    value: DealValueModel | None
    timing: CloseTimingModel | None
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _ns(moments: Any) -> np.ndarray:
    series = pd.to_datetime(pd.Series(moments), utc=True)
    return series.dt.tz_localize(None).dt.as_unit("ns").to_numpy().astype("int64")


def won_amounts(outcomes: pd.DataFrame) -> pd.Series:
    """The amount of each won lead's deal (positive amounts only), by lead_id."""
    if "amount" not in outcomes.columns:
        return pd.Series(dtype=float)
    won = outcomes[outcomes["won"].astype(bool)]
    amount = pd.to_numeric(won["amount"], errors="coerce")
    keep = amount.notna() & (amount > 0)
    return (
        pd.Series(amount[keep].to_numpy(), index=won["lead_id"][keep].astype(str))
        .groupby(level=0)
        .first()
    )


def fit_outlook(fitted: Fitted, data: LeadData, config: RunConfig, seed: int) -> Outlook:
    """Deal value and time-to-close models with their holdout figures (see the module doc)."""
    examples = fitted.examples
    if not examples.timestamped or data.outcomes is None or examples.now is None:
        return Outlook(None, None, notes=[
            "no deal value or time to close: they are learned from timestamped leads "
            "(created_at) and an outcomes file (closed_at, won, amount)"
        ])  # fmt: skip
    featurizer = fitted.scorer.featurizer
    mask = np.asarray(featurizer.categorical_mask_, dtype=bool)
    now = pd.Timestamp(examples.now)
    now_ns = int(now.tz_convert("UTC").tz_localize(None).as_unit("ns").value)
    features = config.features
    snaps = open_snapshots(
        data.leads, data.outcomes, features.snapshot_ages_days, now, features.snapshots_per_lead
    )
    holdout_leads = set(fitted.holdout_frame["lead_id"].astype(str))
    training = snaps[~snaps["lead_id"].isin(holdout_leads)].reset_index(drop=True)
    amounts = won_amounts(data.outcomes)
    rng = np.random.default_rng(seed)
    timing_rows = np.arange(len(training))
    if len(timing_rows) > MAX_TIMING_SNAPSHOTS:
        timing_rows = np.sort(rng.choice(len(training), MAX_TIMING_SNAPSHOTS, replace=False))
    value_rows = np.flatnonzero(
        training["won"].to_numpy() & training["lead_id"].isin(amounts.index).to_numpy()
    )
    if len(value_rows) > MAX_VALUE_SNAPSHOTS:  # every snapshot of a sample of the won leads
        leads = training["lead_id"].to_numpy()[value_rows]
        value_rows = value_rows[sample_leads_rows(leads, MAX_VALUE_SNAPSHOTS, seed)]
    rows = np.union1d(timing_rows, value_rows)
    chosen = training.iloc[rows].assign(outlook_row=rows)
    frame = attach_attributes(chosen, data.leads, data.attribute_history)
    # the deal value and timing models never read the wide codes (constant in their fits)
    X_all = without_wide_codes(
        featurizer.transform(frame, data.touchpoints), featurizer.column_kinds_
    )
    position = pd.Series(np.arange(len(frame)), index=frame["outlook_row"].to_numpy())
    notes: list[str] = []
    metrics: dict[str, float] = {}

    value = None
    at = position.reindex(value_rows).dropna().to_numpy(dtype=np.int64)
    deals = frame["lead_id"].iloc[at].nunique()
    if deals >= MIN_DEALS:
        lead = frame["lead_id"].iloc[at].astype(str).to_numpy()
        value = fit_value_model(X_all[at], mask, amounts.reindex(lead).to_numpy(), lead)
        holdout_ids = fitted.holdout_frame["lead_id"].astype(str).to_numpy()
        has_amount = pd.Series(holdout_ids).isin(amounts.index).to_numpy()
        value.metrics = value_metrics(
            value,
            fitted.X_holdout[has_amount],
            amounts.reindex(holdout_ids[has_amount]).to_numpy(),
        )
        metrics.update(value.metrics)
    else:
        notes.append(
            f"no deal value model: {deals} won deals with an amount among the training leads, "
            f"at least {MIN_DEALS} are needed; give the outcomes an amount column (--amount)"
        )

    timing = None
    at = position.reindex(timing_rows).dropna().to_numpy(dtype=np.int64)
    part = frame.iloc[at]
    wins = int((part["won"] & (part["closed_ns"] >= 0)).sum())
    if wins >= MIN_TIMING_WINS:
        timing = fit_timing_model(
            X_all[at],
            lead_ages(part["created_at"], part["as_of"]),
            _ns(part["as_of"]),
            part["closed_ns"].to_numpy(),
            part["won"].to_numpy(dtype=bool),
            now_ns,
            mask,
            float(config.features.horizon_days),
            seed,
            groups=part["lead_id"].to_numpy(),
        )
        holdout = snaps[snaps["lead_id"].isin(holdout_leads)]
        timing.metrics = _holdout_timing(timing, fitted, data, holdout, now_ns, seed)
        metrics.update(timing.metrics)
    else:
        notes.append(
            f"no time-to-close model: {wins} won snapshots among the training leads, at least "
            f"{MIN_TIMING_WINS} are needed; add outcomes of more leads"
        )
    return Outlook(value, timing, metrics, notes)


def _holdout_timing(
    timing: CloseTimingModel,
    fitted: Fitted,
    data: LeadData,
    holdout: pd.DataFrame,
    now_ns: int,
    seed: int,
) -> dict[str, float]:
    """Figures per horizon on the holdout leads' open snapshots whose label for that horizon
    is known (won or lost within it, or the horizon over by the data's end), scored with the
    evaluation model (fitted without the holdout)."""
    if len(holdout) > MAX_TIMING_SNAPSHOTS:
        rows = np.sort(
            np.random.default_rng(seed).choice(len(holdout), MAX_TIMING_SNAPSHOTS, replace=False)
        )
        holdout = holdout.iloc[rows]
    frame = attach_attributes(holdout.reset_index(drop=True), data.leads, data.attribute_history)
    if len(frame) == 0:
        return {}
    X = fitted.scorer.featurizer.transform(frame, data.touchpoints)
    return timing_metrics(
        timing,
        X,
        lead_ages(frame["created_at"], frame["as_of"]),
        fitted.scorer.estimator.predict_proba(X),
        _ns(frame["as_of"]),
        frame["closed_ns"].to_numpy(),
        frame["won"].to_numpy(dtype=bool),
        now_ns,
    )


__all__ = ["DAY_NS", "Outlook", "fit_outlook", "won_amounts"]
