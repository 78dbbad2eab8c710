"""The MLflow pyfunc of a lead scoring model (models-from-code) and its artifacts.

MLflow runs this file when it loads a model (`mlflow.models.set_model` at the bottom), so the
logged model needs no pickle: its artifacts are

- ``featurizer.json``: `LeadFeaturizer.to_dict()` (vocabularies, windows: plain JSON)
- ``estimator.skops``: the fitted scikit-learn classifier, saved with skops and loaded with the
  explicit allow-list `TRUSTED_TYPES` (skops refuses any other type, so a tampered file cannot run
  code on load)
- ``scorer.json``: the calibration map and the baseline lead used for reasons
- ``policy.json``: the default qualification policy
- ``holdout.parquet``: held-out leads' `probability`, `label`, `as_of` (for policy simulation)
- ``metadata.json``: name, version, trained_at, metrics, holdout_weeks, features, run id
- ``evaluation_estimator.skops`` and ``evaluation.json`` (only when the served estimator was
  refitted on training + holdout): the model fitted without the holdout and its calibration map,
  which the champion/challenger gate scores (the refit may have learned a later run's holdout)

Input: a DataFrame with `lead_id`, the attribute columns, optional `created_at` and `as_of`, and
`touchpoints` (a JSON string: list of {occurred_at, channel, activity, campaign, value}) when the
model uses touchpoints. Output: `probability`, `score`, `grade`, `decision`, `lead_id`,
`reasons_for`, `reasons_against` (JSON strings), `hard_rule`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.data.vocabulary import normalise_activity, normalise_channel
from features.featurizer import LeadFeaturizer
from features.model.calibration import CalibratedModel
from features.model.scorer import LeadScorer
from features.policy.rules import Policy

# Every type the candidate models (HistGradientBoosting, logistic regression pipelines) contain that
# skops does not trust by default. Loading refuses anything else.
TRUSTED_TYPES: list[str] = [
    "functools.partial",
    "numpy.dtype",
    "scipy._lib.array_api_compat.numpy._aliases.asarray",
    "scipy.interpolate._bsplines.BSpline",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]


ARTIFACTS = ("featurizer", "estimator", "scorer", "policy", "holdout", "metadata")


EVALUATION_FILES = {
    "evaluation_estimator": "evaluation_estimator.skops",
    "evaluation": "evaluation.json",
}


FILES = {
    "featurizer": "featurizer.json",
    "estimator": "estimator.skops",
    "scorer": "scorer.json",
    "policy": "policy.json",
    "holdout": "holdout.parquet",
    "metadata": "metadata.json",
}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def untrusted_types(estimator: Any) -> list[str]:
    """Types in `estimator` that `TRUSTED_TYPES` does not cover (must be empty to save it)."""
    import skops.io as sio

    return sorted(set(sio.get_untrusted_types(data=sio.dumps(estimator))) - set(TRUSTED_TYPES))


def save_scorer(
    scorer: LeadScorer, directory: str | Path, evaluation_estimator: CalibratedModel | None = None
) -> dict[str, str]:
    """Write the scorer's artifacts into `directory`; returns {artifact name: path}.

    `evaluation_estimator`: the model fitted without the holdout, when `scorer.estimator` is a
    refit on training + holdout (kept for the champion gate)."""
    import skops.io as sio

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for estimator in (scorer.estimator, evaluation_estimator):
        extra = [] if estimator is None else untrusted_types(estimator.model)
        if extra:
            raise ValueError(
                f"the estimator contains types {extra} that the model loader does not trust; add "
                "them to features.pyfunc_model.TRUSTED_TYPES only if they are safe to load"
            )
    files = {**FILES, **(EVALUATION_FILES if evaluation_estimator is not None else {})}
    paths = {name: str(directory / file) for name, file in files.items()}
    if evaluation_estimator is not None:
        sio.dump(evaluation_estimator.model, paths["evaluation_estimator"])
        Path(paths["evaluation"]).write_text(
            json.dumps(_json_safe({"calibration": evaluation_estimator.calibration}))
        )
    Path(paths["featurizer"]).write_text(json.dumps(_json_safe(scorer.featurizer.to_dict())))
    sio.dump(scorer.estimator.model, paths["estimator"])
    Path(paths["scorer"]).write_text(
        json.dumps(
            _json_safe({"calibration": scorer.estimator.calibration, "baseline": scorer.baseline})
        )
    )
    Path(paths["policy"]).write_text(scorer.policy.model_dump_json(indent=2))
    holdout = (
        scorer.holdout
        if scorer.holdout is not None
        else pd.DataFrame({"probability": [], "label": [], "as_of": []})
    )
    holdout.to_parquet(paths["holdout"], index=False)
    Path(paths["metadata"]).write_text(json.dumps(_json_safe(scorer.metadata), indent=2))
    return paths


def load_scorer(paths: dict[str, str], evaluation: bool = False) -> LeadScorer:
    """Rebuild a `LeadScorer` from artifact paths (as MLflow hands them to `load_context`).

    `evaluation=True`: with the model fitted without the holdout, when the served one is a refit
    (otherwise the served one: it is the evaluation model)."""
    import skops.io as sio

    featurizer = LeadFeaturizer.from_dict(json.loads(Path(paths["featurizer"]).read_text()))
    state = json.loads(Path(paths["scorer"]).read_text())
    if evaluation and "evaluation_estimator" in paths:
        model = sio.load(paths["evaluation_estimator"], trusted=TRUSTED_TYPES)
        state["calibration"] = json.loads(Path(paths["evaluation"]).read_text())["calibration"]
    else:
        model = sio.load(paths["estimator"], trusted=TRUSTED_TYPES)
    baseline = [math.nan if v is None else v for v in state["baseline"]]
    policy = Policy.model_validate_json(Path(paths["policy"]).read_text())
    holdout = pd.read_parquet(paths["holdout"])
    metadata = json.loads(Path(paths["metadata"]).read_text())
    return LeadScorer(
        featurizer,
        CalibratedModel(model, state["calibration"]),
        policy=policy,
        metadata=metadata,
        holdout=holdout,
        baseline=baseline,
    )


def frame_touchpoints(model_input: pd.DataFrame) -> pd.DataFrame | None:
    """Touchpoints of a pyfunc input (a `touchpoints` JSON-string column) as a canonical frame."""
    if "touchpoints" not in model_input.columns:
        return None
    rows = []
    for lead_id, text in zip(model_input["lead_id"], model_input["touchpoints"], strict=True):
        if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
            continue
        touches = json.loads(text) if isinstance(text, str) else list(text)
        if not isinstance(touches, list):
            raise ValueError(
                f"lead {lead_id!r}: 'touchpoints' must be a JSON list of touchpoints, got {text!r:.80}"
            )
        for t in touches:
            rows.append(
                {
                    "lead_id": str(lead_id),
                    "occurred_at": t.get("occurred_at"),
                    "channel": t.get("channel"),
                    "activity": t.get("activity"),
                    "campaign": t.get("campaign"),
                    "value": t.get("value"),
                }
            )
    columns = ["lead_id", "occurred_at", "channel", "activity", "campaign", "value"]
    touches = pd.DataFrame(rows, columns=columns)
    touches["occurred_at"] = pd.to_datetime(touches["occurred_at"], utc=True, format="ISO8601")
    touches["value"] = pd.to_numeric(touches["value"], errors="coerce")

    touches["channel"] = touches["channel"].map(normalise_channel).astype(str)
    touches["activity"] = touches["activity"].map(normalise_activity).astype(str)
    return touches


def pyfunc_output(scored: pd.DataFrame) -> pd.DataFrame:
    """`score_frame` output in the pyfunc's column order (probability first, for spark_udf)."""
    out = scored[["probability", "score", "grade", "decision", "lead_id"]].copy()
    for column in ("reasons_for", "reasons_against"):
        if column in scored:
            out[column] = [json.dumps(r) for r in scored[column]]
    out["hard_rule"] = scored["hard_rule"].fillna("").astype(str)
    return out


try:  # MLflow is needed to log and load the model, not to use the scoring core.
    import mlflow.pyfunc

    class LeadScoringModel(mlflow.pyfunc.PythonModel):
        """pyfunc wrapper: raw leads in the contract format -> scores, grades, reasons."""

        def load_context(self, context: Any) -> None:
            self.artifacts = dict(context.artifacts)
            self.scorer = load_scorer(self.artifacts)

        def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None):
            if not isinstance(model_input, pd.DataFrame):
                model_input = pd.DataFrame(model_input)
            frame = model_input.copy()
            if "lead_id" not in frame.columns:
                frame["lead_id"] = [str(i) for i in range(len(frame))]
            frame["lead_id"] = frame["lead_id"].astype(str)
            for column in ("created_at", "as_of"):
                if column in frame.columns:
                    frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
            touchpoints = frame_touchpoints(frame)
            frame = frame.drop(columns=["touchpoints"], errors="ignore")
            explain = bool((params or {}).get("explain", True))
            scored = self.scorer.score_frame(frame, touchpoints, explain=explain)
            return pyfunc_output(scored)

    mlflow.models.set_model(LeadScoringModel())
except ImportError:  # pragma: no cover
    pass


def load_model_scorer(model_uri: str, evaluation: bool = False) -> LeadScorer:
    """Load a logged/registered model (`models:/lead-scoring@champion`, `runs:/...`) as a scorer.

    `metadata["name"]`/`["version"]` are filled from the registry when the URI names one.
    `evaluation=True` gives the model fitted without the holdout (see `load_scorer`).
    """
    import mlflow

    python_model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    scorer = python_model.scorer
    artifacts = getattr(python_model, "artifacts", None)  # absent in models logged before refits
    if evaluation and artifacts and "evaluation_estimator" in artifacts:
        scorer = load_scorer(artifacts, evaluation=True)
    if model_uri.startswith("models:/"):
        name, _, ref = model_uri[len("models:/") :].partition("@")
        client = mlflow.MlflowClient()
        try:
            if ref:
                version = client.get_model_version_by_alias(name, ref).version
            else:
                name, _, version = name.partition("/")
            scorer.metadata["name"], scorer.metadata["version"] = name, str(version)
        except Exception:  # noqa: BLE001 - metadata only; the model itself loaded fine
            pass
    return scorer
