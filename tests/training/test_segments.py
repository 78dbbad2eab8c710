"""A model per segment, trained in MLflow on demo leads whose EMEA segment wins by a different
true process (the effects of company size and industry reversed) and whose LATAM segment is
thin: EMEA gets its own model and it beats the global one on EMEA's held-out leads, LATAM falls
back to the global model, and every answer names the model that scored it."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from features.data import demo
from features.data.demo.process import INDUSTRIES, SIZES

pytestmark = pytest.mark.slow


def _segmented_leads(n: int, seed: int) -> pd.DataFrame:
    """Demo leads (flat mode: a `won` label, and the true probability `truth`) with LATAM cut
    to a thin 60 leads. The true process: outside EMEA company size and industry decide; in
    EMEA seniority and lead source do (effects drawn once, the same for every call)."""
    leads = demo.generate(n, seed=seed).leads.to_pandas()
    leads = leads[["lead_id", "industry", "company_size", "region", "seniority", "lead_source"]]
    latam = np.flatnonzero((leads["region"] == "LATAM").to_numpy())
    leads = leads.drop(leads.index[latam[60:]]).reset_index(drop=True)
    size = leads["company_size"].astype(str).map({k: v[1] for k, v in SIZES.items()})
    industry = leads["industry"].astype(str).map({k: v[1] for k, v in INDUSTRIES.items()})
    emea = (leads["region"] == "EMEA").to_numpy()
    logit = np.where(
        emea,
        -1.2 + _effect(leads["seniority"]) + _effect(leads["lead_source"]),
        -1.2 + 2.0 * size.to_numpy(dtype=float) + 2.0 * industry.to_numpy(dtype=float),
    )
    truth = 1 / (1 + np.exp(-logit))
    won = np.random.default_rng(seed).random(len(leads)) < truth
    return leads.astype(str).assign(won=np.where(won, "yes", "no"), truth=truth)


def _effect(values: pd.Series) -> np.ndarray:
    """An effect in [-2, 2) per value, the same for a spelling in every sample (blank: 0)."""
    text = values.astype(str).fillna("")
    return np.array([0.0 if not v else (zlib.crc32(v.encode()) % 1000) / 250 - 2 for v in text])


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    from training.train import TrainingConfig, resolve_config, train

    root = tmp_path_factory.mktemp("segments")
    path = root / "leads.csv"
    _segmented_leads(8000, seed=5).drop(columns=["truth"]).to_csv(path, index=False)
    config = resolve_config(None, leads=path, label="won")
    config.training = TrainingConfig(search="tiny", cv_folds=3, segment_by="region")
    patch = pytest.MonkeyPatch()
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    patch.setenv("MLFLOW_TRACKING_URI", tracking)
    with patch.context() as inside:
        inside.chdir(root)
        result = train(config, seed=2)
    try:
        yield result, tracking, root
    finally:
        patch.undo()


def test_a_segment_with_its_own_process_gets_a_model_that_beats_the_global_one(segmented):
    result, _, _ = segmented
    m = result.segment_metrics
    assert m["segment_EMEA_own_model"] == 1.0
    # on EMEA's held-out leads, its own model against the global model
    assert m["segment_EMEA_log_loss"] < m["segment_EMEA_global_log_loss"] - 0.005
    assert m["segment_EMEA_roc_auc"] > m["segment_EMEA_global_roc_auc"] - 0.005
    # the thin segment falls back, and the run says why with the counts
    assert m["segment_LATAM_own_model"] == 0.0
    assert m["segment_LATAM_roc_auc"] == m.get("segment_LATAM_global_roc_auc")
    [note] = [w for w in result.warnings if "region='LATAM'" in w]
    assert "won and" in note and "at least 30 and 30" in note and "global model" in note


def test_each_answer_names_the_model_that_scored_it(segmented):
    from features.model.artifact import load_model_scorer

    result, tracking, _ = segmented
    scorer = load_model_scorer(result.model_uri, tracking)
    fresh = _segmented_leads(3000, seed=6)
    truth = fresh.pop("truth").to_numpy()
    fresh = fresh.drop(columns=["won"])
    scored = scorer.score_frame(fresh)
    # fresh EMEA leads: its own model is nearer the true probability than the global model
    emea = (fresh["region"] == "EMEA").to_numpy()
    own = scored["probability"].to_numpy()[emea]
    global_ = scorer.estimator.predict_proba(scorer.features(fresh[emea]))
    assert np.abs(own - truth[emea]).mean() < np.abs(global_ - truth[emea]).mean()
    by_region = dict(zip(fresh["lead_id"], fresh["region"]))
    regions = scored["lead_id"].map(by_region)
    assert (scored.loc[regions == "EMEA", "segment"] == "EMEA").all()
    assert (scored.loc[regions == "LATAM", "segment"] == "global").all()
    # the global model scores LATAM: its probability, bit for bit
    latam = fresh[fresh["region"] == "LATAM"]
    X = scorer.features(latam)
    np.testing.assert_array_equal(
        scored.loc[regions == "LATAM", "probability"].to_numpy(),
        scorer.estimator.predict_proba(X),
    )
    # the API's path gives the same segment and probability for one lead as the batch
    lead = fresh[fresh["region"] == "EMEA"].iloc[0]
    record = {"lead_id": lead["lead_id"], "attributes": lead.drop("lead_id").to_dict()}
    [alone] = scorer.score_records([record])
    assert alone["segment"] == "EMEA"
    row = scored.set_index("lead_id").loc[lead["lead_id"]]
    assert alone["probability"] == pytest.approx(row["probability"], abs=1e-12)
    # reasons come from the model that scored the lead
    assert alone["reasons_for"] or alone["reasons_against"]


def test_the_run_logs_figures_per_segment(segmented):
    from mlflow import MlflowClient

    result, tracking, _ = segmented
    logged = MlflowClient(tracking).get_run(result.run_id).data.metrics
    assert logged["holdout_segment_EMEA_roc_auc"] == pytest.approx(
        result.segment_metrics["segment_EMEA_roc_auc"]
    )
    assert logged["holdout_segment_LATAM_own_model"] == 0.0


def test_a_column_that_cannot_segment_is_refused_by_name(tmp_path, monkeypatch):
    from training.train import TrainingConfig, TrainingConfigError, resolve_config, train

    path = tmp_path / "leads.csv"
    _segmented_leads(1500, seed=7).drop(columns=["truth"]).to_csv(path, index=False)
    config = resolve_config(None, leads=path, label="won")
    config.training = TrainingConfig(search="none", cv_folds=1, segment_by="Region ")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainingConfigError) as refused:
        train(config)
    assert str(refused.value).startswith(
        "training.segment_by (--segment-by): 'Region ' is not an attribute column of the leads; "
        "segment by a categorical attribute column such as 'industry'"
    )
