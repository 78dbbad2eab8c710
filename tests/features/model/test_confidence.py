"""The confidence label: leads in a crowded part of the score grid are high, leads where the
training data was thin are low, and the state round-trips through JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from features.model.confidence import LeadConfidence


def _training(n: int = 20_000, seed: int = 0) -> dict[str, np.ndarray]:
    """Probability, fit and engagement of training snapshots: fit and engagement drive the
    probability, so a high-fit, high-engagement lead with a low probability is rare."""
    rng = np.random.default_rng(seed)
    fit, engagement = rng.beta(2, 8, n), rng.beta(2, 8, n)
    probability = np.clip(0.5 * fit + 0.5 * engagement + rng.normal(0, 0.01, n), 0, 1)
    return {"probability": probability, "fit": fit, "engagement": engagement}


def test_typical_leads_are_high_and_leads_unlike_the_training_ones_are_low():
    confidence = LeadConfidence.learn(_training())
    leads = {
        "probability": np.array([0.2, 0.2, 0.9]),
        "fit": np.array([0.2, 0.05, 0.9]),
        "engagement": np.array([0.2, 0.6, 0.9]),
    }
    similar = confidence.similar_leads(leads)
    # a typical lead; a low-fit lead with high engagement (some); a lead beyond them all
    assert similar[0] >= 150 and similar[2] < 30
    assert confidence.labels(similar).tolist()[0::2] == ["high", "low"]
    assert confidence.labels(np.array([0, 29, 30, 149, 150])).tolist() == [
        "low", "low", "medium", "medium", "high"
    ]  # fmt: skip
    # every training snapshot is in one cell
    assert confidence.counts.sum() == 20_000


def test_few_training_leads_make_every_lead_low():
    small = {k: v[:300] for k, v in _training().items()}
    confidence = LeadConfidence.learn(small)
    labels = confidence.labels(confidence.similar_leads(_training(seed=1)))
    assert (labels == "low").mean() > 0.9


def test_the_state_is_json_and_scores_the_same():
    confidence = LeadConfidence.learn(_training())
    again = LeadConfidence.from_dict(json.loads(json.dumps(confidence.to_dict())))
    leads = _training(500, seed=2)
    np.testing.assert_array_equal(again.similar_leads(leads), confidence.similar_leads(leads))
    with pytest.raises(ValueError, match="counts have shape"):
        LeadConfidence(["probability"], [[0.5]], [1, 2, 3])
