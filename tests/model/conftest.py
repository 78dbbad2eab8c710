"""A real model trained in-process on demo data, for behaviour tests (no MLflow: seconds, not
minutes). The same scorer code serves the API, batch scoring and the MLflow pyfunc."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest


@dataclass
class DemoModel:
    scorer: Any  # features.model.scorer.LeadScorer
    leads: Any  # canonical leads frame
    touchpoints: Any  # canonical touchpoints frame
    X: Any  # the training examples' features
    labels: Any  # and their labels


@pytest.fixture(scope="session", params=["logistic", "gradient_boosting"])
def demo_model(request, tmp_path_factory) -> DemoModel:
    return train_demo_model(request.param, tmp_path_factory.mktemp("behaviour-demo"))


def train_demo_model(kind: str, directory: Path) -> DemoModel:
    """Demo data (2,000 leads) -> features -> a fitted model of `kind`, wrapped as a scorer."""
    from features.config import FeatureConfig
    from features.data.config import DataConfig
    from features.data.demo import create_demo_data
    from features.data.loading import load_lead_data
    from features.featurizer import LeadFeaturizer
    from features.model.calibration import CalibratedModel
    from features.model.reasons import typical_lead
    from features.model.scorer import LeadScorer
    from features.policy.rules import Policy
    from training.data import build_examples
    from training.models import Candidate, build_estimator

    create_demo_data(directory, n_leads=2000, seed=7, formats=("parquet",))
    data = load_lead_data(DataConfig.from_directory(directory))
    config = FeatureConfig()
    examples = build_examples(data, config)
    featurizer = LeadFeaturizer(config).fit(data.leads, data.attribute_types, data.touchpoints)
    X = featurizer.transform(examples.frame, data.touchpoints)
    mask = featurizer.categorical_mask_
    params = {"C": 1.0, "splines": True} if kind == "logistic" else {}
    model = build_estimator(Candidate(kind, params), mask, seed=0)
    model.fit(X, examples.labels)
    calibration = {"method": "none"}
    scorer = LeadScorer(
        featurizer,
        CalibratedModel(model, calibration),
        policy=Policy(),
        baseline=typical_lead(X, mask),
    )
    return DemoModel(scorer, data.leads, data.touchpoints, X, examples.labels)


def _plain(value: Any) -> Any:
    """A frame cell as a JSON-like value (pandas' missing markers -> None, numpy scalars -> python)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def lead_records(model: DemoModel, n: int, age_days: int = 7) -> list[dict[str, Any]]:
    """n demo leads as API records scored `age_days` after creation, with their touchpoints."""
    leads = model.leads.head(n)
    touches = model.touchpoints[model.touchpoints["lead_id"].isin(leads["lead_id"])]
    by_lead = {lead_id: group for lead_id, group in touches.groupby("lead_id")}
    records = []
    for row in leads.to_dict("records"):
        as_of = row["created_at"].to_pydatetime() + timedelta(days=age_days)
        group = by_lead.get(row["lead_id"])
        touchpoints = [] if group is None else [
            {
                "occurred_at": t["occurred_at"].to_pydatetime(),
                "channel": t["channel"],
                "activity": t["activity"],
                "campaign": t["campaign"] if isinstance(t["campaign"], str) else None,
                "value": None if t["value"] != t["value"] else float(t["value"]),
            }
            for t in group.to_dict("records")
            if t["occurred_at"].to_pydatetime() < as_of
        ]  # fmt: skip
        attributes = {k: _plain(v) for k, v in row.items() if k not in ("lead_id", "created_at")}
        records.append(
            {
                "lead_id": row["lead_id"],
                "created_at": row["created_at"].to_pydatetime(),
                "as_of": as_of,
                "attributes": attributes,
                "touchpoints": touchpoints,
            }
        )
    return records
