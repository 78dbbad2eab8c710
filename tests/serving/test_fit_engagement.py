"""Fit and engagement, with a real model trained in MLflow: touchpoints never move the fit,
attributes never move the engagement (property-style over many leads), and the sub-scores and
their grid everywhere a score goes: POST /v1/score, GET /v1/model, the MLflow run, the pyfunc
output and `leadscore score`."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.serving.conftest import auth, demo_records


@pytest.fixture(scope="module")
def scorer(trained_model):
    from features.model.artifact import load_model_scorer

    return load_model_scorer(
        f"models:/{trained_model.name}/{trained_model.versions[0]}", trained_model.tracking_uri
    )


def _columns(scorer, records):
    return scorer.score_columns(records, explain=False)


def _swap(records, key, seed):
    """Each lead with another lead's `key` (touchpoints or attributes), everything else kept."""
    rng = random.Random(seed)
    donors = [r[key] for r in records]
    rng.shuffle(donors)
    return [{**r, key: donor} for r, donor in zip(records, donors)]


@pytest.mark.parametrize("batch", [1, 8, 300], ids=["one-lead", "few-leads", "many-leads"])
def test_touchpoints_never_move_fit_and_attributes_never_move_engagement(
    scorer, trained_model, batch
):
    """Over 300 demo leads, three times each: every lead given another lead's touchpoints keeps
    its fit score exactly, and given another lead's attributes keeps its engagement score
    exactly; the other sub-score (and the combined probability) do move."""
    records = demo_records(trained_model, 300)
    fit_moved = engagement_moved = 0
    for seed in range(3):
        touches_swapped = _swap(records, "touchpoints", seed)
        attributes_swapped = _swap(records, "attributes", seed)
        for start in range(0, len(records), batch):
            part = slice(start, start + batch)
            base = _columns(scorer, records[part])
            new_touches = _columns(scorer, touches_swapped[part])
            new_attributes = _columns(scorer, attributes_swapped[part])
            assert new_touches["fit_probability"] == base["fit_probability"]
            assert new_touches["fit_grade"] == base["fit_grade"]
            assert new_attributes["engagement_probability"] == base["engagement_probability"]
            assert new_attributes["engagement_level"] == base["engagement_level"]
            fit_moved += sum(
                a != b for a, b in zip(new_attributes["fit_probability"], base["fit_probability"])
            )
            engagement_moved += sum(
                a != b
                for a, b in zip(
                    new_touches["engagement_probability"], base["engagement_probability"]
                )
            )
    # the sub-scores are not constants: the swaps that may move them do, for most leads
    assert fit_moved > 0.5 * 900 and engagement_moved > 0.3 * 900, (fit_moved, engagement_moved)


def test_the_grid_cell_is_the_fit_band_and_the_engagement_band(scorer, trained_model):
    columns = _columns(scorer, demo_records(trained_model, 300))
    subscores = scorer.subscores
    fit = np.asarray(columns["fit_probability"])
    engagement = np.asarray(columns["engagement_probability"])
    letters = np.asarray(columns["fit_grade"])
    levels = np.asarray(columns["engagement_level"])
    assert [f"{a}{b}" for a, b in zip(letters, levels)] == columns["grid"]
    bands = subscores.fit_bands
    assert (fit[letters == "A"] > bands[0]).all() and (fit[letters == "D"] <= bands[2]).all()
    e_bands = subscores.engagement_bands
    assert (engagement[levels == 1] > e_bands[0]).all()
    assert (engagement[levels == 4] <= e_bands[2]).all()
    # the leads spread over the grid: five cells at least, so two letters and two digits at least
    # (leads scored long after their touches are mostly alike in engagement)
    assert len(set(columns["grid"])) >= 5
    # both are calibrated probabilities of the same win as the headline one
    assert ((fit > 0) & (fit < 1)).all() and ((engagement > 0) & (engagement < 1)).all()


def test_each_answer_carries_fit_engagement_and_the_model_says_how_good_they_are(
    scoring_app, trained_model, scorer
):
    records = demo_records(trained_model, 12)
    body = scoring_app.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    expected = _columns(scorer, records)
    for i, lead in enumerate(body["results"]):
        sub = lead["fit_engagement"]
        assert sub["fit"] == pytest.approx(expected["fit_probability"][i])
        assert sub["engagement"] == pytest.approx(expected["engagement_probability"][i])
        assert sub["grid"] == f"{sub['fit_grade']}{sub['engagement_level']}"
    info = scoring_app.get("/v1/model", headers=auth("scorer")).json()["fit_engagement"]
    assert len(info["fit_bands"]) == 3 and info["fit_bands"] == sorted(info["fit_bands"])[::-1]
    assert 0 <= info["metrics"]["fit_roc_auc"] <= 1
    shares = [info["metrics"][f"grid_{a}{d}_share"] for a in "ABCD" for d in "1234"]
    assert sum(shares) == pytest.approx(1.0)
    version = trained_model.client().get_model_version(
        trained_model.name, trained_model.versions[0]
    )
    logged = trained_model.client().get_run(version.run_id).data.metrics
    assert logged["holdout_fit_roc_auc"] == pytest.approx(info["metrics"]["fit_roc_auc"])
    assert logged["holdout_engagement_ece"] == pytest.approx(info["metrics"]["engagement_ece"])
    schemas = scoring_app.get("/openapi.json").json()["components"]["schemas"]
    assert (
        "touchpoints never move it" in schemas["FitEngagement"]["properties"]["fit"]["description"]
    )


def test_the_pyfunc_and_batch_scoring_carry_the_grid(trained_model, scorer, tmp_path, monkeypatch):
    from features.model.artifact import pyfunc_input_example, score_pyfunc_input
    from leadscore.cli import app

    demo = trained_model.demo_dir
    leads = pd.read_parquet(demo / "leads.parquet").head(30)
    touches = pd.read_parquet(demo / "touchpoints.parquet")
    frame = leads.assign(as_of=pd.Timestamp("2025-01-15", tz="UTC"))
    example = pyfunc_input_example(frame, touches, True, rows=30)
    out = score_pyfunc_input(scorer, example)
    assert list(out.columns[:2]) == ["probability", "score"]  # spark_udf reads the first
    for column in ("fit_probability", "engagement_probability", "fit_grade", "grid"):
        assert out[column].notna().all(), column
    assert json.loads(out["amount_reasons"].iloc[0]) is not None

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    path = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, [
        "score", "--model", f"models:/{trained_model.name}/{trained_model.versions[0]}",
        "--leads", str(demo / "leads.parquet"), "--touchpoints", str(demo / "touchpoints.parquet"),
        "--as-of", "2025-01-15", "--out", str(path),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(path)
    assert set(scores["grid"]) <= {f"{a}{d}" for a in "ABCD" for d in "1234"}
    assert scores["grid"].nunique() >= 8
    by_lead = scores.set_index("lead_id")
    pyfunc = out.set_index("lead_id")
    shared = pyfunc.index.intersection(by_lead.index)
    assert len(shared) == 30
    np.testing.assert_allclose(
        by_lead.loc[shared, "fit_probability"], pyfunc.loc[shared, "fit_probability"], rtol=1e-9
    )
