"""The true design of the demo process (`oracle.true_design`): the terms a correctly specified
model reads, what `bench/shapes.py` fits its well-specified reference on. Its columns must carry
the oracle's logit exactly once the first 21 days are seen, with the process's own effects as
their coefficients, and not before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.data import demo
from features.data.config import DataConfig
from features.data.demo.oracle import true_design
from features.data.demo.process import ACTIVITY_EFFECT, SHAPES
from features.data.loading import load_lead_data

EXPORT = pd.Timestamp("2024-12-31", tz="UTC")


@pytest.fixture(scope="module", params=["high_cardinality", "date_driven"])
def shaped(request, tmp_path_factory):
    """2,000 leads of a shape as `load_lead_data` reads them back and their oracle logit, cut to
    the leads created 21 days or more before the export (the files lack the rest of younger
    leads' first 21 days)."""
    shape = request.param
    out = tmp_path_factory.mktemp(shape)
    demo.create_demo_data(out, 2000, seed=23, formats=("parquet",), shape=shape)
    loaded = load_lead_data(DataConfig.from_directory(out))
    p = pd.read_parquet(out / "oracle.parquet")["true_win_probability"].to_numpy()
    old = (loaded.leads["created_at"] <= EXPORT - pd.Timedelta(days=21)).to_numpy()
    assert old.mean() > 0.9
    leads = loaded.leads[old].reset_index(drop=True)
    touchpoints = loaded.touchpoints[loaded.touchpoints["lead_id"].isin(leads["lead_id"])]
    return shape, leads, touchpoints, np.log(p / (1 - p))[old]


def _least_squares(design, logit) -> tuple[dict[str, float], float]:
    """Coefficients by column name and the largest residual of the logit on [1, design]."""
    X = np.column_stack([np.ones(design.matrix.shape[0]), design.matrix.toarray()])
    coef, *_ = np.linalg.lstsq(X, logit, rcond=None)
    return dict(zip(["intercept", *design.names], coef, strict=True)), float(
        np.abs(X @ coef - logit).max()
    )


def test_at_30_days_the_design_carries_the_oracle_logit_with_the_process_effects(shaped):
    shape, leads, touchpoints, logit = shaped
    design = true_design(leads, touchpoints, 30, shape)
    assert design.matrix.shape == (len(leads), len(design.names))
    coef, residual = _least_squares(design, logit)
    assert residual < 1e-8
    # each behaviour column is weighed by the process's own weight: the terms are the truth's
    for activity, (weight, transform) in ACTIVITY_EFFECT.items():
        assert coef[f"{activity}__{transform}"] == pytest.approx(weight, abs=1e-8)
    process = SHAPES[shape]
    if process.referrers:
        assert design.referrer.sum() == process.referrers + 1  # every referrer, and missing
        assert {n for n, r in zip(design.names, design.referrer, strict=True) if r} >= {
            "referrer=REF-0001",
            "referrer=unreadable",
        }
    else:
        assert not design.referrer.any()
    for term, effects in (("month", process.month_effect), ("weekday", process.weekday_effect)):
        if effects:  # a one-hot's levels are known up to the intercept: compare differences
            learned = [coef[f"{term}={i}"] - coef[f"{term}=0"] for i in range(len(effects))]
            np.testing.assert_allclose(learned, np.subtract(effects, effects[0]), atol=1e-8)
    if process.renewal_share:
        assert coef["renewal_soon"] == pytest.approx(process.renewal_effect, abs=1e-8)


def test_before_day_21_the_design_lacks_what_the_oracle_reads(shaped):
    shape, leads, touchpoints, logit = shaped
    at_7 = true_design(leads, touchpoints, 7, shape)
    _, residual = _least_squares(at_7, logit)
    assert residual > 0.5  # touches of days 7 to 21 the oracle counts and a 7-day snapshot lacks
    at_21 = true_design(leads, touchpoints, 21, shape)
    at_60 = true_design(leads, touchpoints, 60, shape)
    assert (at_21.matrix != at_60.matrix).nnz == 0  # later touches are not the truth's
