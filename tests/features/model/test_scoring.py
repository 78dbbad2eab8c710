"""The scorer's vectorised helpers give exactly what their reference (a full sort) gives."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pandas as pd
import pytest

from features.model.reasons import ranked_effects, strongest_effects


@pytest.mark.parametrize("seed", range(6))
def test_strongest_effects_pick_what_a_stable_sort_picks(seed):
    rng = np.random.default_rng(seed)
    n_leads, n_features = 300, 25
    # Effects on a coarse grid tie often; NaN (typical value) is never a reason.
    effects = np.round(rng.normal(scale=3, size=(n_leads, n_features)) * 2) / 2
    effects[rng.random(effects.shape) < 0.5] = np.nan
    effects[:5] = np.nan  # leads without any effect
    effects[5:10, 2:] = np.nan  # leads with fewer effects than reasons
    effects[10, :] = 1.5  # one lead where everything ties
    for n in (1, 3, n_features):
        fast = strongest_effects(effects, n)
        reference = ranked_effects(effects, n)
        for mine, theirs in ((fast[1], reference[1]), (fast[3], reference[3])):
            np.testing.assert_array_equal(mine, theirs)  # the same effects, NaN where none is left
        sides = ((fast[0], fast[1], reference[0]), (fast[2], fast[3], reference[2]))
        for columns, values, ref_columns in sides:
            used = ~np.isnan(values)
            np.testing.assert_array_equal(columns[used], ref_columns[used])
    top, top_effect, bottom, bottom_effect = strongest_effects(effects[10:11], 3)
    assert top.tolist() == [[0, 1, 2]] and bottom.tolist() == [[24, 23, 22]]


class _NaNForHugeEmployees:
    """An estimator whose sum became inf - inf for a lead with an out-of-range number."""

    compiled = None

    def __init__(self, column: int) -> None:
        self.column = column

    def predict_proba(self, X):
        p = np.full(X.shape[0], 0.3)
        p[np.isinf(X[:, self.column])] = np.nan
        return p


@pytest.mark.parametrize("n_leads", [1, 8, 9, 12])  # both the per-lead and the array paths
def test_a_lead_without_a_valid_probability_is_refused_by_name(n_leads):
    from datetime import datetime

    from features.model.scorer import LeadScorer
    from tests.features.test_featurizer import fitted

    featurizer = fitted()
    names = list(featurizer.get_feature_names_out())
    scorer = LeadScorer(featurizer, _NaNForHugeEmployees(names.index("employees")))
    now = datetime(2024, 6, 1, tzinfo=UTC)
    records = [
        {"lead_id": f"L{i}", "attributes": {"employees": float("inf") if i == n_leads - 1 else 10.0},
         "as_of": now, "created_at": None, "touchpoints": []}
        for i in range(n_leads)
    ]  # fmt: skip
    with pytest.raises(ValueError) as error:
        scorer.score_columns(records, explain=False)
    assert str(error.value) == (
        f"the model gave no valid probability for lead(s) 'L{n_leads - 1}' (index {n_leads - 1}): "
        "check their numeric attributes for values out of range (such as 1e400, read as infinity)"
    )
    frame = pd.DataFrame({"lead_id": [r["lead_id"] for r in records],
                          "employees": [r["attributes"]["employees"] for r in records]})  # fmt: skip
    for spec in featurizer.attributes_.columns_:  # every other attribute missing
        if spec["column"] not in frame:
            frame[spec["column"]] = pd.NaT if spec["type"] == "datetime" else None
    with pytest.raises(ValueError, match=rf"lead\(s\) 'L{n_leads - 1}' \(index {n_leads - 1}\)"):
        scorer.score_frame(frame, as_of=now, explain=False)
