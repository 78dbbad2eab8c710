"""The deal value model's numbers: each category's weight looked up in one table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from features.model.value import DealValueModel


def _model(codes_by_column: dict[int, list[float]], seed: int = 0) -> DealValueModel:
    rng = np.random.default_rng(seed)
    terms = [
        {"column": j, "kind": "category", "codes": codes,
         "weights": rng.normal(size=len(codes)).tolist(), "missing": float(rng.normal())}
        for j, codes in codes_by_column.items()
    ]  # fmt: skip
    terms.append({"column": 9, "kind": "number", "log": True, "fill": 1.0, "center": 0.5,
                  "scale": 2.0, "weight": 0.3, "missing": -0.2})  # fmt: skip
    return DealValueModel({"intercept": 8.0, "terms": terms, "smear": 1.1,
                           "interval": {"level": 0.8, "low": -1.0, "high": 1.0}})  # fmt: skip


def test_each_category_gets_its_own_weight_others_none_and_blanks_the_missing_weight():
    codes = {0: [0.0, 2.0, 5.0], 3: [1.0], 4: [], 7: [0.0, 1.0, 2.0, 3.0, 63.0]}
    model = _model(codes)
    rng = np.random.default_rng(1)
    pool = [0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 63.0, 64.0, 2.5, -1.0, 1e300, math.inf, math.nan]
    X = rng.normal(size=(300, 10))
    for j in codes:
        X[:, j] = rng.choice(pool, size=300)
    got = model.contributions(X)
    for term in model.terms[:-1]:
        weight_of = dict(zip(term["codes"], term["weights"], strict=True))
        for i, v in enumerate(X[:, term["column"]].tolist()):
            missing = v != v
            expected = (0.0 if missing else weight_of.get(v, 0.0)) + missing * term["missing"]
            assert got[i, term["column"]] == expected
    assert (got[:, [1, 2, 5, 6, 8]] == 0).all()  # columns without a term


def test_a_category_code_that_is_not_a_whole_number_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="retrain the model"):
        _model({0: [0.0, 1.5]})
