"""Learning time to close (`features.model.timing.CloseTimingModel`), censored leads included.

Every snapshot of a lead still open at its moment T counts, whether or not its outcome is known
yet: for each period (T + e_k, T + e_k+1] that starts while the lead is open and before the data's
end, the lead is won in it, lost in it, or still open at its end; a period the data ends inside
(the lead still open then) is left out, the periods before it are kept. So a lead still open
today (censored) says "not won, not lost" for as long as it was watched, which is what pulls the
chances down for leads like it; dropping it would overstate how soon leads win.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from features.model.timing import LOST, OPEN, WON, CloseTimingModel, period_edges
from features.snapshots import snapshot_age_mask
from training.data import drawn_leads_mask

MAX_PERIOD_ROWS = 120_000  # period rows the classifier is fitted on (a random sample above)
DAY_NS = 86_400 * 10**9


def first_outcomes(outcomes: pd.DataFrame | None, now: pd.Timestamp) -> tuple[pd.Series, pd.Series]:
    """(closed_at ns, won) per lead_id: each lead's earliest outcome known by `now`, a win
    first on a tie (as `features.snapshots.build_snapshots` reads them)."""
    if outcomes is None or len(outcomes) == 0:
        return pd.Series(dtype="int64"), pd.Series(dtype=bool)
    closed = pd.to_datetime(outcomes["closed_at"], utc=True)
    frame = pd.DataFrame({
        "lead_id": outcomes["lead_id"].astype(str).to_numpy(),
        "closed": closed.dt.tz_localize(None).dt.as_unit("ns").to_numpy().astype("int64"),
        "won": outcomes["won"].astype(bool).to_numpy(),
        "known": (closed <= now).to_numpy() & closed.notna().to_numpy(),
    })  # fmt: skip
    frame = frame[frame["known"]].sort_values(
        ["lead_id", "closed", "won"], ascending=[True, True, False]
    )
    frame = frame.drop_duplicates("lead_id").set_index("lead_id")
    return frame["closed"], frame["won"]


def open_snapshots(
    leads: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    ages_days: Sequence[float],
    now: pd.Timestamp,
    per_lead: int | None = None,
) -> pd.DataFrame:
    """Every (lead, age) whose moment T = created_at + age is at or before `now` and at which the
    lead is still open: lead_id, created_at, as_of, snapshot_age_days, closed_ns (-1: no outcome
    known by now), won. With `per_lead`, only the ages each lead is drawn to be seen at (the
    draw of the training snapshots: `features.snapshots.snapshot_age_mask`)."""
    closed, won = first_outcomes(outcomes, now)
    created = pd.to_datetime(leads["created_at"], utc=True)
    ids = leads["lead_id"].astype(str).to_numpy()
    known = created.notna().to_numpy()
    created_ns = created.dt.tz_localize(None).dt.as_unit("ns").to_numpy().astype("int64")
    closed_ns = closed.reindex(ids).fillna(-1).to_numpy().astype("int64")
    is_won = won.reindex(ids).fillna(False).to_numpy(dtype=bool)
    now_ns = int(now.tz_convert("UTC").tz_localize(None).as_unit("ns").value)
    drawn = snapshot_age_mask(ids, tuple(ages_days), per_lead)
    frames = []
    for j, age in enumerate(ages_days):
        as_of = created_ns + int(round(age * DAY_NS))
        keep = known & drawn[:, j] & (as_of <= now_ns) & ((closed_ns < 0) | (closed_ns > as_of))
        frames.append(pd.DataFrame({
            "lead_id": ids[keep],
            "created_at": created[keep].to_numpy(),
            "as_of": pd.to_datetime(as_of[keep], utc=True),
            "snapshot_age_days": float(age),
            "closed_ns": closed_ns[keep],
            "won": is_won[keep],
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def period_targets(
    as_of_ns: np.ndarray,
    closed_ns: np.ndarray,
    won: np.ndarray,
    now_ns: int,
    edges: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(snapshot index, period index, class OPEN/WON/LOST) of every period a snapshot was
    watched through: open at its start, the start before `now`, and its end either reached
    (still open) or holding the lead's close. `closed_ns` -1: no outcome by now (censored)."""
    rows, periods, classes = [], [], []
    has_close = closed_ns >= 0
    for k in range(len(edges) - 1):
        start = as_of_ns + int(round(edges[k] * DAY_NS))
        end = as_of_ns + int(round(edges[k + 1] * DAY_NS))
        open_at_start = ~has_close | (closed_ns > start)
        watched = open_at_start & (start < now_ns)
        closes_in = has_close & (closed_ns > start) & (closed_ns <= end)
        survives = (~has_close | (closed_ns > end)) & (end <= now_ns)
        keep = watched & (closes_in | survives)
        target = np.where(closes_in, np.where(won, WON, LOST), OPEN)
        index = np.flatnonzero(keep)
        rows.append(index)
        periods.append(np.full(index.size, k))
        classes.append(target[index])
    return np.concatenate(rows), np.concatenate(periods), np.concatenate(classes)


def fit_timing_model(
    X: np.ndarray,
    lead_age: np.ndarray,
    as_of_ns: np.ndarray,
    closed_ns: np.ndarray,
    won: np.ndarray,
    now_ns: int,
    categorical: np.ndarray,
    horizon_days: float,
    seed: int = 0,
    max_rows: int = MAX_PERIOD_ROWS,
    groups: np.ndarray | None = None,
) -> CloseTimingModel:
    """A `CloseTimingModel` fitted on the periods every open snapshot was watched through.

    `groups` (the lead of each snapshot): early stopping watches leads the trees never saw. A
    lead gives up to 6 periods in each of its snapshots; split row by row, the validation rows
    share their leads with the training rows, the validation loss falls as long as the trees
    learn the leads themselves, and the search never stopped before its 300 rounds."""
    edges = period_edges(horizon_days)
    snapshot, period, target = period_targets(as_of_ns, closed_ns, won, now_ns, edges)
    rng = np.random.default_rng(seed)
    if snapshot.size > max_rows:
        chosen = np.sort(rng.choice(snapshot.size, max_rows, replace=False))
        snapshot, period, target = snapshot[chosen], period[chosen], target[chosen]
    start = np.asarray(edges[:-1])[period]
    inputs = np.column_stack([X[snapshot], start, lead_age[snapshot] + start])
    mask = np.concatenate([np.asarray(categorical, dtype=bool), [False, False]])
    classifier = HistGradientBoostingClassifier(
        categorical_features=mask if mask.any() else None,
        max_iter=300,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=100,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=30,
        random_state=seed,
    )
    held = None if groups is None else held_out_leads(np.asarray(groups)[snapshot], target, rng)
    if held is None:
        classifier.fit(inputs, target)
    else:
        classifier.fit(inputs[~held], target[~held], X_val=inputs[held], y_val=target[held])
    return CloseTimingModel(classifier, edges, horizon_days)


def held_out_leads(
    leads: np.ndarray, target: np.ndarray, rng: np.random.Generator, share: float = 0.1
) -> np.ndarray | None:
    """Rows of a random `share` of the leads, for early stopping (every row of a lead on one
    side); None when either side would miss a class (too few leads). The leads are drawn from
    the sorted distinct ids, as `rng.choice(np.unique(leads), ...)` would (`drawn_leads_mask`)."""
    held = drawn_leads_mask(leads, share, rng)
    classes = np.unique(target).size
    if any(np.unique(target[side]).size < classes for side in (held, ~held)):
        return None
    return held


def _ece(labels: np.ndarray, probability: np.ndarray, bins: int = 10) -> float:
    from training.evaluate import expected_calibration_error

    return float(expected_calibration_error(labels, probability, bins))


def timing_metrics(
    model: CloseTimingModel,
    X: np.ndarray,
    lead_age: np.ndarray,
    probability: np.ndarray,
    as_of_ns: np.ndarray,
    closed_ns: np.ndarray,
    won: np.ndarray,
    now_ns: int,
) -> dict[str, Any]:
    """Figures per horizon on the open snapshots whose label for it is known by `now_ns` (closed
    within it, or the horizon over): ROC AUC and expected calibration error of the chance of a
    win within it, and the share of leads whose chances ever fall with the horizon (0 by
    construction)."""
    chances, median = model.predict(X, lead_age, probability)
    metrics: dict[str, Any] = {}
    previous = np.zeros(len(probability))
    falls = np.zeros(len(probability), dtype=bool)
    has_close = closed_ns >= 0
    for horizon, chance in chances.items():
        end = as_of_ns + int(horizon * DAY_NS)
        closes_within = has_close & (closed_ns <= end)
        known = closes_within | (end <= now_ns)
        label = (won & closes_within)[known]
        if 0 < label.sum() < label.size:
            metrics[f"timing_roc_auc_{horizon}d"] = float(roc_auc_score(label, chance[known]))
        if label.size:
            metrics[f"timing_ece_{horizon}d"] = _ece(label.astype(int), chance[known])
            metrics[f"timing_win_rate_{horizon}d"] = float(label.mean())
        falls |= chance < previous - 1e-12
        previous = chance
    metrics["timing_non_monotone_share"] = float(falls.mean())
    winners = won & (closed_ns >= 0)
    if winners.any():
        days = (closed_ns[winners] - as_of_ns[winners]) / DAY_NS
        metrics["timing_median_days_predicted"] = float(np.median(median[winners]))
        metrics["timing_median_days_actual"] = float(np.median(days))
    return metrics
