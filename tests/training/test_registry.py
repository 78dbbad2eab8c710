"""The champion/challenger gate and `promote`, on MLflow's real SQLite registry."""

import pytest

from training.registry import RegistryError, promote, promotion_gate

CHAMPION = {"roc_auc": 0.80, "ece": 0.02, "log_loss": 0.45}


def test_first_model_is_promoted():
    assert promotion_gate(CHAMPION, None).promote


def test_equal_or_slightly_better_stays_challenger():
    decision = promotion_gate({**CHAMPION, "roc_auc": 0.803}, CHAMPION, "1")
    assert not decision.promote
    assert "not better than champion v1 by the margin" in decision.reason


def test_better_ranking_with_worse_calibration_stays_challenger():
    decision = promotion_gate({"roc_auc": 0.83, "ece": 0.04, "log_loss": 0.44}, CHAMPION, "1")
    assert not decision.promote and "worse calibration" in decision.reason


def test_clearly_better_is_promoted():
    decision = promotion_gate({"roc_auc": 0.83, "ece": 0.015, "log_loss": 0.42}, CHAMPION, "1")
    assert decision.promote and decision.reason.startswith("promoted")


def test_promoting_an_unknown_version_names_the_known_ones(tracking):
    from mlflow import MlflowClient

    client = MlflowClient()
    client.create_registered_model("lead-scoring")
    with pytest.raises(
        RegistryError, match=r"model 'lead-scoring' has no version 7 \(versions: none\)"
    ):
        promote("lead-scoring", "7", client)
    with pytest.raises(RegistryError, match="version must be a number"):
        promote("lead-scoring", "v2", client)


def test_ece_tolerance_allows_sampling_noise_on_small_holdouts():
    small = {"roc_auc": 0.83, "ece": 0.03, "log_loss": 0.44, "leads": 1000}  # tolerance 0.0158
    assert promotion_gate(small, {**CHAMPION, "leads": 1000}, "1").promote
    large = {**small, "leads": 100_000}  # tolerance 0.005
    assert not promotion_gate(large, {**CHAMPION, "leads": 100_000}, "1").promote
