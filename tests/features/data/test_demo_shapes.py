"""Demo data shapes: each a variation of the known process, with its truth recomputable from the
files and the property it promises (win rate, a high-cardinality column, a date effect)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from features.data import demo
from features.data.config import DataConfig
from features.data.demo.process import SENIORITY, SHAPES, referrer_effects, referrer_names
from features.data.loading import load_lead_data
from leadscore.cli import app

EXPORT = pd.Timestamp("2024-12-31", tz="UTC")
SHAPED = [name for name in SHAPES if name != "default"]
WIN_RATE = {"high_cardinality": 0.11, "date_driven": 0.15, "imbalanced": 0.02, "small": 0.10}


@pytest.fixture(scope="module")
def large():
    """20,000 leads of each shape (about 0.3 s each): rates within a point."""
    return {name: demo.generate(20_000, seed=5, shape=name) for name in SHAPES}


def _matured_wins(data: demo.DemoData) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Leads created long enough before the export that every win is written, whether each won,
    and each one's true probability."""
    leads = data.leads.to_pandas()
    outcomes = data.outcomes.to_pandas()
    matured = (leads["created_at"] < EXPORT - pd.Timedelta(days=120)).to_numpy()
    won = leads["lead_id"].isin(outcomes.loc[outcomes["won"], "lead_id"]).to_numpy()
    p = data.oracle["true_win_probability"].to_numpy()
    return leads[matured].reset_index(drop=True), won[matured], p[matured]


@pytest.mark.parametrize("shape", SHAPED)
def test_the_oracle_file_is_the_oracle_recomputed_from_the_written_files(tmp_path, shape):
    demo.create_demo_data(tmp_path, 1500, seed=11, formats=("csv",), shape=shape)
    loaded = load_lead_data(
        DataConfig(
            leads=tmp_path / "leads.csv",
            touchpoints=tmp_path / "touchpoints.csv",
            outcomes=tmp_path / "outcomes.csv",
        )
    )
    oracle = pd.read_parquet(tmp_path / "oracle.parquet")["true_win_probability"].to_numpy()
    recomputed = demo.oracle_from_observables(loaded.leads, loaded.touchpoints, shape)
    old_enough = (loaded.leads["created_at"] < EXPORT - pd.Timedelta(days=21)).to_numpy()
    assert old_enough.mean() > 0.9
    np.testing.assert_allclose(recomputed[old_enough], oracle[old_enough], atol=1e-12)
    # the shape's part counts: read as the default process, the truth is another one
    as_default = demo.oracle_from_observables(loaded.leads, loaded.touchpoints)
    assert np.abs(as_default - oracle)[old_enough].max() > 0.01


@pytest.mark.parametrize("shape", SHAPED)
def test_each_shape_wins_as_often_as_it_promises_and_its_oracle_is_calibrated(large, shape):
    leads, won, p = _matured_wins(large[shape])
    promised = WIN_RATE[shape]
    tolerance = 0.004 if promised < 0.05 else 0.01
    assert abs(large[shape].oracle["true_win_probability"].to_numpy().mean() - promised) < tolerance
    assert abs(won.mean() - p.mean()) < max(tolerance, 3 * np.sqrt(promised / len(won)))
    assert 0.7 < roc_auc_score(won, p) < 0.95


def test_the_default_shape_adds_no_column_and_the_others_add_theirs(large):
    columns = {name: set(data.leads.column_names) for name, data in large.items()}
    added = {name: columns[name] - columns["default"] for name in SHAPES}
    assert added == {
        "default": set(),
        "high_cardinality": {"referrer"},
        "date_driven": {"contract_renewal"},
        "imbalanced": set(),
        "small": {"referrer", "contract_renewal"},
    }


@pytest.mark.parametrize("shape", ["high_cardinality", "small"])
def test_the_referrer_has_hundreds_of_zipf_like_values_and_is_the_strongest_attribute(large, shape):
    leads = large[shape].leads.to_pandas()
    referrer = leads["referrer"].astype(object)
    counts = referrer.value_counts()
    assert len(counts) >= 0.9 * SHAPES[shape].referrers >= 270  # hundreds of distinct values
    assert set(counts.index) <= set(referrer_names(SHAPES[shape].referrers))
    shares = counts.to_numpy() / len(leads)
    assert 0.1 < shares[0] < 0.3 and shares[9] < shares[0] / 5 and shares[99] < 0.003
    assert 0.01 < referrer.isna().mean() < 0.06
    # its effect on the logit varies more across leads than seniority's, the strongest default
    effect = dict(zip(referrer_names(SHAPES[shape].referrers), referrer_effects(SHAPES[shape])))
    referrer_part = referrer.map(effect).fillna(0.0).astype(float)
    seniority_of = {sp.lower(): v[1] for v in SENIORITY.values() for sp in v[2]}
    seniority = leads["seniority"].astype(object).str.strip().str.lower().map(seniority_of)
    assert referrer_part.std() > 1.5 * seniority.fillna(0.0).astype(float).std()


def test_referrer_effects_are_the_process_s_not_the_data_seed_s():
    """Fresh leads from another seed must share the effects the model learned."""
    leads = [demo.generate(20_000, seed=s, shape="high_cardinality") for s in (1, 2)]
    logits = []
    for data in leads:
        frame = data.leads.to_pandas()
        p = data.oracle["true_win_probability"].to_numpy()
        logit = pd.Series(np.log(p / (1 - p))).groupby(frame["referrer"].astype(object)).mean()
        logits.append(logit)
    top = referrer_names(20)
    # leads of the same referrer have a similar true logit whatever the seed
    assert np.corrcoef(logits[0][top], logits[1][top])[0, 1] > 0.9


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_date_driven_wins_follow_the_month_weekday_and_renewal_date(large):
    leads, won, p = _matured_wins(large["date_driven"])
    month = leads["created_at"].dt.month.to_numpy()
    rate = pd.Series(won).groupby(month).mean()
    assert rate[12] > 2 * rate[8]  # the year-end budget against the summer
    weekend = leads["created_at"].dt.day_of_week.to_numpy() >= 5
    assert won[weekend].mean() < 0.7 * won[~weekend].mean()
    renewal = leads["contract_renewal"]
    ahead = (renewal.dt.month - leads["created_at"].dt.month) % 12
    soon = (renewal.notna() & (ahead < 3)).to_numpy()
    assert won[soon].mean() > 1.8 * won[~soon].mean()
    # the default shape has no such effect: its true logit barely moves with the month
    by_month = {
        name: pd.Series(_logit(large[name].oracle["true_win_probability"].to_numpy()))
        .groupby(large[name].leads.to_pandas()["created_at"].dt.month.to_numpy())
        .mean()
        for name in ("default", "date_driven")
    }
    assert np.ptp(by_month["date_driven"]) > 1.0 > 5 * np.ptp(by_month["default"])


def test_a_model_sees_the_dates_as_attributes(tmp_path):
    demo.create_demo_data(tmp_path, 400, seed=2, formats=("parquet",), shape="small")
    loaded = load_lead_data(DataConfig.from_directory(tmp_path))
    assert loaded.report.ok
    assert loaded.attribute_types["contract_renewal"] == "datetime"
    assert loaded.attribute_types["referrer"] == "categorical"
    renewal = loaded.leads["contract_renewal"]
    ahead = renewal - loaded.leads["created_at"].dt.floor("D")
    assert ahead.min() >= pd.Timedelta(0) and ahead.max() < pd.Timedelta(days=365)
    assert 0.5 < renewal.notna().mean() < 0.7


def test_small_writes_a_few_thousand_leads_unless_told(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app, ["demo-data", "--shape", "small", "--out", str(tmp_path / "a"), "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 3,000 leads" in result.output and "(shape small)" in result.output
    assert len(pd.read_csv(tmp_path / "a" / "leads.csv")) == 3000
    result = runner.invoke(
        app,
        ["demo-data", "--shape", "small", "--leads", "200", "--out", str(tmp_path / "b"),
         "--format", "parquet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "b" / "leads.parquet")) == 200


def test_an_unknown_shape_is_refused_with_the_shapes_there_are(tmp_path):
    result = CliRunner().invoke(app, ["demo-data", "--shape", "huge", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "'huge' is not one of" in result.output and "high_cardinality" in result.output
    for call in (
        lambda: demo.generate(10, shape="huge"),
        lambda: demo.oracle_from_observables(pd.DataFrame(), pd.DataFrame(), "huge"),
    ):
        with pytest.raises(ValueError, match="unknown demo shape 'huge'; use one of: default, "):
            call()
