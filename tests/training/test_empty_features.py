"""Features with no value in the rows a model is fitted on: set aside on the model side (no
scikit-learn traceback), with a warning naming the column."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from training.models import Candidate, build_estimator, fill_empty_columns, fit_estimator
from training.train import empty_feature_notes

runner = CliRunner()
BOOSTING = Candidate("gradient_boosting", {"max_iter": 20, "early_stopping": False})


def _rows(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), np.full(n, np.nan), rng.integers(0, 3, n)])
    return X.astype(float), (X[:, 0] + rng.normal(size=n) > 0).astype(int)


def test_an_all_missing_column_breaks_plain_gradient_boosting_but_not_fit_estimator():
    X, y = _rows()
    mask = np.array([False, False, True])
    with pytest.raises(ValueError, match="window shape cannot be larger than input array shape"):
        build_estimator(BOOSTING, mask, 0).fit(X, y)  # scikit-learn's own failure
    empty: set[int] = set()
    model = fit_estimator(BOOSTING, mask, 0, X, y, empty, groups=None)
    assert empty == {1}
    # the column is never used: whatever it holds when scoring, the probabilities do not move
    scored = X.copy()
    scored[:, 1] = np.linspace(-1e3, 1e3, len(X))
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(scored))
    logistic = fit_estimator(Candidate("logistic", {"C": 0.1}), mask, 0, X, y, groups=None)
    np.testing.assert_allclose(logistic.predict_proba(X), logistic.predict_proba(scored))


def test_fill_empty_columns_leaves_other_columns_and_the_input_alone():
    X, _ = _rows()
    filled, empty = fill_empty_columns(X)
    assert empty == [1] and (filled[:, 1] == 0).all() and np.isnan(X[:, 1]).all()
    np.testing.assert_array_equal(filled[:, [0, 2]], X[:, [0, 2]])
    same, none = fill_empty_columns(filled)
    assert same is filled and none == []


def test_the_warning_names_the_column_and_what_the_model_does():
    X = np.array([[1.0, np.nan, np.nan], [2.0, np.nan, 3.0], [3.0, np.nan, np.nan]])
    names = ["visits", "rare", "days_since_last_high_intent"]
    notes = empty_feature_notes(names, ["visits", "rare"], X, {1, 2})
    assert notes == [
        "column 'rare' has no value in the 3 training examples: the model does not use it",
        "feature 'days_since_last_high_intent' has a value in only 1 of 3 training examples, "
        "none in the rows some cross-validation models were fitted on: those models do not use it",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 5])
def test_a_column_with_values_on_2_of_300_leads_trains(tracking, tmp_path, seed):
    """The report's repro: these seeds crashed with scikit-learn's binning traceback."""
    rng = np.random.default_rng(0)
    rare = np.full(300, np.nan)
    rare[[5, 200]] = [3.0, 7.0]
    pd.DataFrame({"id": [f"L{i}" for i in range(300)], "src": rng.choice(list("abc"), 300),
                  "visits": rng.integers(0, 10, 300), "won": rng.integers(0, 2, 300),
                  "rare": rare}).to_csv(tmp_path / "rare.csv", index=False)  # fmt: skip
    (tmp_path / "c.yaml").write_text("training:\n  search: tiny\n  cv_folds: 2\n")
    result = runner.invoke(app, ["train", "--leads", str(tmp_path / "rare.csv"), "--id", "id",
                                 "--label", "won", "--config", str(tmp_path / "c.yaml"),
                                 "--seed", str(seed)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "window shape" not in result.output
    output = " ".join(result.output.split())  # rich wraps long warnings
    assert (
        "warning: column 'rare' has a value in only 1 of 240 training examples, none in the rows "
        "some cross-validation models were fitted on: those models do not use it" in output
    )
