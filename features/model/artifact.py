"""The lead scoring model as an MLflow artifact: what is saved, how it is loaded, what produced it.

The only module of `features/` and `serving/` that imports mlflow and skops. They, and the model
code, are imported inside the functions that need them: the CLI reads the registry names here at
start, and importing mlflow alone takes seconds.

**Registry.** Models are registered as `MODEL_NAME`; a new version gets the alias `CHALLENGER`,
the one in service `CHAMPION`. `parse_model_uri` is the one reader of `models:/` URIs.

**Files.** A logged model is a models-from-code MLflow pyfunc whose artifacts are data, never a
pickle:

- ``featurizer.json``: `LeadFeaturizer.to_dict()` (vocabularies, windows: plain JSON)
- ``estimator.skops``: the fitted scikit-learn classifier, saved with skops and loaded with the
  explicit allow-list `TRUSTED_TYPES` (skops refuses any other type, so a tampered file cannot run
  code on load)
- ``scorer.json``: the calibration map and the baseline lead used for reasons
- ``policy.json``: the default qualification policy
- ``holdout.parquet``: held-out leads' `probability`, `label`, `as_of` and, with a deal value
  model, `expected_value`, with a time-to-close model `win_within_{30,60,90}d` and
  `median_days_to_close` (for policy simulation and what each grade holds on /ops)
- ``metadata.json``: name, version, trained_at, metrics, holdout_weeks, features, run id
- ``evaluation_estimator.skops`` and ``evaluation.json`` (only when the served estimator was
  refitted on training + holdout): the model fitted without the holdout and its calibration map,
  which the champion/challenger gate scores (the refit may have learned a later run's holdout)
- ``value.json`` (`DealValueModel.to_dict()`, plain JSON), ``timing.json`` and ``timing.skops``
  (`CloseTimingModel`: periods and horizons as JSON, its classifier with skops and the same
  allow-list), when the deal value and time-to-close models were trained (issue 14)
- ``subscores.json`` and ``subscores.skops`` (`FitEngagement`: columns, calibration maps, share
  bands and figures as JSON; the fit and engagement classifiers, skops, same allow-list) and
  ``confidence.json`` (`LeadConfidence`: the grid's edges and training leads per cell)
- ``segments.json`` and ``segments.skops`` (`SegmentModels`, with `training.segment_by`: the
  column, each segment's code, calibration and figures; the segments' classifiers by label)
- ``samples.json``: 20 held-out leads and a lead with no attributes, in the pyfunc input format,
  with the probability the model gave each when it was logged (`record_samples`)
- ``hashes.json`` (written at registration, `record_file_hashes`): the sha256 of every other file
  of the model directory (data files, MLmodel, the bundled code); its own sha256 is the model
  version tag `HASHES_TAG`, in the registry, out of reach of whoever can write the artifact store

**Loading.** `load_model_scorer` downloads the model directory, checks every file against
``hashes.json`` and that against the version's tag (`check_file_hashes`: a changed, extra or
missing file is refused by name), builds the `LeadScorer` from the data files with this process's
code, and has it score its sample leads (`check_samples`: it must reproduce the recorded
probabilities). It never runs the python file or the copy of `features/` bundled with the model,
so a version registered by any release loads the same way. Versions registered without hashes
or samples load with a warning (`warn`), or are refused with `require_hashes=True`.
`mlflow models serve` and `mlflow.pyfunc.load_model` do run the bundled code (MLflow's own
loading, no checks): the entry file `pyfunc_entry.py` calls `set_pyfunc_model`, whose python
model reads the same files.

**Pyfunc input**: a DataFrame with `lead_id`, the attribute columns, optional `created_at` and
`as_of`, and `touchpoints` (a JSON string: list of {occurred_at, channel, activity, campaign,
value}) when the model uses touchpoints. Params (optional): `explain` (false leaves out the
reasons) and `policy` (JSON text of a qualification policy, or of `GET /v1/policy`'s answer: the
policy marketing ops saved; default: the model's own). Output: `probability`, `score`, `grade`,
`decision`, `lead_id`, `reasons_for`, `reasons_against` (JSON strings), `hard_rule`, then, when
the model has them, the fit and engagement columns (`fit_probability`, `engagement_probability`,
`fit_grade`, `engagement_level`, `grid`) and the deal value and time-to-close columns
(`PYFUNC_EXTRA_COLUMNS`; `amount_reasons` a JSON string), and `policy` (which policy decided:
`features.policy.applied`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

    from features.model.calibration import CalibratedModel
    from features.model.scorer import LeadScorer

log = logging.getLogger(__name__)

MODEL_NAME = "lead-scoring"  # the registered model
CHAMPION = "champion"  # the alias of the version in service
CHALLENGER = "challenger"  # the alias every new version gets


# Every type the candidate models (HistGradientBoosting, logistic regression pipelines) contain that
# skops does not trust by default. Loading refuses anything else.
TRUSTED_TYPES: list[str] = [
    "functools.partial",
    "numpy.dtype",
    "scipy._lib.array_api_compat.numpy._aliases.asarray",
    "scipy.interpolate._bsplines.BSpline",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # a target encoder's cross-fitting folds: by row, or by lead (`training.models`)
    "sklearn.model_selection._split.GroupKFold",
    "sklearn.model_selection._split.StratifiedGroupKFold",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.utils.validation.check_array",
]


FILES = {
    "featurizer": "featurizer.json",
    "estimator": "estimator.skops",
    "scorer": "scorer.json",
    "policy": "policy.json",
    "holdout": "holdout.parquet",
    "metadata": "metadata.json",
}


EVALUATION_FILES = {
    "evaluation_estimator": "evaluation_estimator.skops",
    "evaluation": "evaluation.json",
}


# The deal value and time-to-close models (issue 14), when trained: JSON, and the time-to-close
# classifier with skops (the same allow-list). Versions without them score without those fields.
OUTLOOK_FILES = {
    "value": "value.json",
    "timing": "timing.json",
    "timing_estimator": "timing.skops",
}


# The fit and engagement sub-scores (issue 14), when trained: their columns, calibration maps,
# share bands and figures as JSON, the two classifiers in one skops file ({"fit", "engagement"}).
SUBSCORE_FILES = {
    "subscores": "subscores.json",
    "subscore_estimators": "subscores.skops",
    "confidence": "confidence.json",  # training leads per cell of the scores' grid (JSON)
}


# The segments' own models (`training.segment_by`), when trained: JSON + one skops dict.
SEGMENT_FILES = {
    "segments": "segments.json",
    "segment_estimators": "segments.skops",
}


# Written by `log_model`; versions logged before it have none (they load with a warning).
SAMPLE_FILES = {"samples": "samples.json"}
SAMPLE_LEADS = 20  # held-out leads in samples.json, besides the lead with no attributes
EMPTY_LEAD_ID = "sample-lead-without-attributes"  # the API accepts such a lead: it must score
SAMPLE_TOLERANCE = 1e-9  # largest difference from a recorded sample probability at load

# Written into the model directory at registration; its sha256 goes on the version as a tag.
HASHES_FILE = "hashes.json"
HASHES_TAG = "leadscore.hashes_sha256"
# Written into a local artifact store in place by MLflow and Python when the version is loaded
# with MLflow's pyfunc (`mlflow models serve -m models:/...`, `mlflow.pyfunc.load_model`): the
# version's name in `registered_model_meta`, byte code in `__pycache__/`. leadscore never reads
# them, so they are neither recorded nor checked (else serving a version with MLflow once would
# get it refused here).
MLFLOW_RUNTIME_FILES = ("registered_model_meta",)  # at the top of the model directory
PYTHON_CACHE = "__pycache__"


# The models-from-code file logged with each model, and the package bundled beside it.
ENTRY_FILE = Path(__file__).resolve().with_name("pyfunc_entry.py")
FEATURES_PACKAGE = Path(__file__).resolve().parents[1]
# What the pyfunc needs to run (pinned to this environment's versions in requirements.txt).
PIP_PACKAGES = (
    "mlflow",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "skops",
    "pydantic",
    "scipy",
)


# --------------------------------------------------------------------------------------------
# Registry URIs


@dataclass(frozen=True)
class ModelRef:
    """A `models:/` URI, read: a registered model's alias or version, or a logged model's id."""

    name: str  # the registered model, or the logged model's id (models:/m-...)
    alias: str | None = None
    version: str | None = None  # a number, or "latest" or a stage as MLflow reads them

    @property
    def registered(self) -> bool:
        """Whether it names a registered model's alias or version (not a logged model's id)."""
        return self.alias is not None or self.version is not None

    @property
    def uri(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        if self.version is not None:
            return f"models:/{self.name}/{self.version}"
        return f"models:/{self.name}"


def parse_model_uri(uri: str) -> ModelRef | None:
    """`models:/NAME@ALIAS`, `models:/NAME/VERSION` or `models:/MODEL_ID` as a `ModelRef`.

    None for any other URI (`runs:/RUN_ID/model`, a path, a `models://profile@...` URI), which
    MLflow resolves itself; ValueError for a `models:/` URI MLflow would refuse too."""
    if not uri.startswith("models:/") or uri.startswith("models://"):
        return None
    rest = uri[len("models:/") :].strip("/")
    parts = rest.split("/")
    ref = None
    if len(parts) == 1 and "@" in rest:
        name, _, alias = rest.rpartition("@")
        ref = ModelRef(name, alias=alias)
    elif len(parts) == 1:
        ref = ModelRef(rest)
    elif len(parts) == 2:
        ref = ModelRef(parts[0], version=parts[1])
    if ref is None or not ref.name or ref.alias == "" or ref.version == "":
        raise ValueError(
            f"{uri!r} is not a model URI: use models:/NAME@ALIAS (such as "
            f"models:/{MODEL_NAME}@{CHAMPION}), models:/NAME/VERSION or models:/MODEL_ID"
        )
    return ref


# --------------------------------------------------------------------------------------------
# The data files


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

    return _untrusted_in(sio.dumps(estimator))


def _untrusted_in(data: bytes) -> list[str]:
    import skops.io as sio

    return sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))


def save_scorer(
    scorer: LeadScorer, directory: str | Path, evaluation_estimator: CalibratedModel | None = None
) -> dict[str, str]:
    """Write the scorer's artifacts into `directory`; returns {artifact name: path}.

    `evaluation_estimator`: the model fitted without the holdout, when `scorer.estimator` is a
    refit on training + holdout (kept for the champion gate)."""
    import skops.io as sio

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # each estimator is serialised once: the bytes checked are the bytes written
    dumped: dict[str, bytes] = {"estimator": sio.dumps(scorer.estimator.model)}
    if evaluation_estimator is not None:
        dumped["evaluation_estimator"] = sio.dumps(evaluation_estimator.model)
    timing_bytes = None if scorer.timing is None else sio.dumps(scorer.timing.classifier)
    subscore_bytes = (
        None
        if scorer.subscores is None
        else sio.dumps({k: m.estimator.model for k, m in scorer.subscores.models().items()})
    )
    segment_bytes = (
        None
        if scorer.segments is None
        else sio.dumps(
            {k: m.model for k, m in zip(scorer.segments.labels, scorer.segments.estimators)}
        )
    )
    extras = [b for b in (timing_bytes, subscore_bytes, segment_bytes) if b is not None]
    for data in (*dumped.values(), *extras):
        extra = _untrusted_in(data)
        if extra:
            raise ValueError(
                f"the estimator contains types {extra} that the model loader does not trust; add "
                "them to features.model.artifact.TRUSTED_TYPES only if they are safe to load"
            )
    files = {**FILES, **(EVALUATION_FILES if evaluation_estimator is not None else {})}
    paths = {name: str(directory / file) for name, file in files.items()}
    for name, data in dumped.items():
        Path(paths[name]).write_bytes(data)
    if evaluation_estimator is not None:
        Path(paths["evaluation"]).write_text(
            json.dumps(_json_safe({"calibration": evaluation_estimator.calibration}))
        )
    Path(paths["featurizer"]).write_text(json.dumps(_json_safe(scorer.featurizer.to_dict())))
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
    if scorer.value is not None:
        paths["value"] = str(directory / OUTLOOK_FILES["value"])
        Path(paths["value"]).write_text(json.dumps(_json_safe(scorer.value.to_dict())))
    if scorer.timing is not None:
        paths["timing"] = str(directory / OUTLOOK_FILES["timing"])
        paths["timing_estimator"] = str(directory / OUTLOOK_FILES["timing_estimator"])
        Path(paths["timing"]).write_text(json.dumps(_json_safe(scorer.timing.to_dict())))
        Path(paths["timing_estimator"]).write_bytes(timing_bytes or b"")
    if scorer.subscores is not None:
        for name in ("subscores", "subscore_estimators"):
            paths[name] = str(directory / SUBSCORE_FILES[name])
        Path(paths["subscores"]).write_text(json.dumps(_json_safe(scorer.subscores.to_dict())))
        Path(paths["subscore_estimators"]).write_bytes(subscore_bytes or b"")
    if scorer.segments is not None:
        for name, file in SEGMENT_FILES.items():
            paths[name] = str(directory / file)
        Path(paths["segments"]).write_text(json.dumps(_json_safe(scorer.segments.to_dict())))
        Path(paths["segment_estimators"]).write_bytes(segment_bytes or b"")
    if scorer.confidence is not None:
        paths["confidence"] = str(directory / SUBSCORE_FILES["confidence"])
        Path(paths["confidence"]).write_text(json.dumps(_json_safe(scorer.confidence.to_dict())))
    return paths


def load_scorer(
    paths: dict[str, str], evaluation: bool = False, compile: bool = True
) -> LeadScorer:
    """Rebuild a `LeadScorer` from the artifact files ({artifact name: local path}).

    `evaluation=True`: with the model fitted without the holdout, when the served one is a refit
    (otherwise the served one: it is the evaluation model). `compile=False`: scikit-learn only,
    no numpy form of the model (`features.model.compiled`)."""
    import skops.io as sio

    from features.featurizer import LeadFeaturizer
    from features.model.calibration import CalibratedModel
    from features.model.scorer import LeadScorer
    from features.model.subscores import FitEngagement
    from features.model.timing import CloseTimingModel
    from features.model.value import DealValueModel
    from features.policy.rules import Policy

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
    value = timing = None
    if "value" in paths:
        value = DealValueModel.from_dict(json.loads(Path(paths["value"]).read_text()))
    if "timing" in paths and "timing_estimator" in paths:
        classifier = sio.load(paths["timing_estimator"], trusted=TRUSTED_TYPES)
        timing = CloseTimingModel.from_dict(
            json.loads(Path(paths["timing"]).read_text()), classifier
        )
        if compile:
            timing.compile()
    from features.model.confidence import LeadConfidence
    from features.model.segments import SegmentModels

    segments = None
    if "segments" in paths and "segment_estimators" in paths:
        segments = SegmentModels.from_dict(
            json.loads(Path(paths["segments"]).read_text()),
            sio.load(paths["segment_estimators"], trusted=TRUSTED_TYPES),
            compile=compile,
        )
    confidence = None
    if "confidence" in paths:
        confidence = LeadConfidence.from_dict(json.loads(Path(paths["confidence"]).read_text()))
    subscores = None
    if "subscores" in paths and "subscore_estimators" in paths:
        subscores = FitEngagement.from_dict(
            json.loads(Path(paths["subscores"]).read_text()),
            sio.load(paths["subscore_estimators"], trusted=TRUSTED_TYPES),
            compile=compile,
        )
    return LeadScorer(
        featurizer,
        CalibratedModel(model, state["calibration"], compile=compile),
        policy=policy,
        metadata=metadata,
        holdout=holdout,
        baseline=baseline,
        value=value,
        timing=timing,
        subscores=subscores,
        confidence=confidence,
        segments=segments,
    )


# --------------------------------------------------------------------------------------------
# The pyfunc's input and output


def frame_touchpoints(model_input: pd.DataFrame) -> pd.DataFrame | None:
    """Touchpoints of a pyfunc input (a `touchpoints` JSON-string column) as a canonical frame."""
    from features.data.vocabulary import normalise_activity, normalise_channel

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
    for column in PYFUNC_EXTRA_COLUMNS:  # the model's other parts, when it has them
        if column in scored:
            out[column] = (
                [json.dumps(r) for r in scored[column]]
                if column == "amount_reasons"
                else scored[column].to_numpy()
            )
    return out


# After the columns every model has (so spark_udf's first column stays the probability).
PYFUNC_EXTRA_COLUMNS = (
    "fit_probability", "engagement_probability", "fit_grade", "engagement_level", "grid",
    "confidence", "similar_leads", "segment",
    "expected_amount", "amount_low", "amount_high", "expected_value", "amount_reasons",
    "win_within_30d", "win_within_60d", "win_within_90d", "median_days_to_close",
)  # fmt: skip


def score_pyfunc_input(
    scorer: LeadScorer, model_input: Any, params: dict | None = None
) -> pd.DataFrame:
    """What the pyfunc's `predict` returns for `model_input` (`params`: `{"explain": False}`
    leaves out the reasons; `{"policy": "<JSON>"}` decides with that policy instead of the
    model's own, see `features.policy.applied.policy_param`)."""
    from features.policy.applied import model_default, policy_param

    applied = policy_param(
        (params or {}).get("policy"), model_default(scorer.policy, scorer.metadata)
    )
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
    scored = scorer.score_frame(
        frame, touchpoints, explain=explain, policy=applied.policy, policy_version=applied.version
    )
    out = pyfunc_output(scored)
    out["policy"] = applied.label
    return out


def pyfunc_input_example(
    frame: pd.DataFrame, touchpoints: pd.DataFrame | None, uses_touchpoints: bool, rows: int = 3
) -> pd.DataFrame:
    """The first `rows` leads in the pyfunc input format (timestamps as ISO text, touchpoints as
    JSON)."""
    frame = frame.head(rows)
    example = frame.copy()
    example = example.drop(columns=[c for c in ("snapshot_age_days",) if c in example.columns])
    for column in ("created_at", "as_of"):
        if column in example.columns:
            example[column] = example[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    for column in example.columns:
        if example[column].dtype.kind in "M":
            example[column] = example[column].astype(str)
        elif example[column].dtype == bool:
            example[column] = example[column].astype("float64")
        elif example[column].dtype.kind in "iu":
            example[column] = example[column].astype("float64")
        elif example[column].dtype.kind not in "f":
            example[column] = example[column].astype(object).where(example[column].notna(), None)
            example[column] = [None if v is None else str(v) for v in example[column]]
    if uses_touchpoints:
        texts = []
        if touchpoints is not None:  # one pass over the touchpoints, not one per lead
            touchpoints = touchpoints[touchpoints["lead_id"].isin(frame["lead_id"])]
        for lead_id, as_of in zip(frame["lead_id"], frame.get("as_of", [None] * len(frame))):
            touches = (
                touchpoints[touchpoints["lead_id"] == lead_id] if touchpoints is not None else None
            )
            if touches is not None and as_of is not None:
                touches = touches[touches["occurred_at"] <= as_of]
            items = [] if touches is None else [
                {"occurred_at": r.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "channel": r.channel,
                 "activity": r.activity, "campaign": None if pd.isna(r.campaign) else r.campaign,
                 "value": None if pd.isna(r.value) else float(r.value)}
                for r in touches.itertuples()
            ]  # fmt: skip
            texts.append(json.dumps(items))
        example["touchpoints"] = texts
    return example.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Refusals, and the sample leads a model must score before it serves


class ModelRefused(ValueError):
    """The model's files were read and refused; the message names the file or lead and the fix."""


class ModelFilesChanged(ModelRefused):
    """A file of a registered version differs from the one recorded when it was registered."""


class ModelCannotScore(ModelRefused):
    """The model fails on its own sample leads, or does not reproduce their probabilities."""


def pyfunc_samples(
    frame: pd.DataFrame,
    touchpoints: pd.DataFrame | None,
    uses_touchpoints: bool,
    n: int = SAMPLE_LEADS,
    seed: int = 0,
) -> pd.DataFrame:
    """`n` leads of `frame` (one row per lead, drawn with `seed`), in the pyfunc input format."""
    leads = frame.drop_duplicates("lead_id")
    leads = leads.sample(n=min(n, len(leads)), random_state=seed).sort_index()
    return pyfunc_input_example(leads, touchpoints, uses_touchpoints, rows=len(leads))


def _cell(value: Any) -> Any:
    missing = value is None or value is pd.NA or value is pd.NaT
    return None if missing else _json_safe(value)


def _with_empty_lead(leads: pd.DataFrame, scorer: LeadScorer) -> dict[str, list]:
    """`leads` as JSON-ready columns, and one more lead with nothing but its id (scored at the
    first lead's `as_of`): the API accepts such a lead, so every model must score it. Every
    column the model reads is there (empty where `leads` lacks it)."""
    columns = {str(c): [_cell(v) for v in leads[c]] for c in leads.columns}
    needed = ["lead_id", *(c["column"] for c in scorer.featurizer.attributes_.columns_)]
    if scorer.featurizer.uses_touchpoints_:
        needed.append("touchpoints")
    for name in needed:
        columns.setdefault(name, [None] * len(leads))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if scorer.featurizer.needs_as_of and "as_of" not in columns:  # recorded, not "now" at load
        columns["as_of"] = [now] * len(leads)
    for values in columns.values():
        values.append(None)
    columns["lead_id"] = [str(i) if v is None else v for i, v in enumerate(columns["lead_id"])]
    columns["lead_id"][-1] = EMPTY_LEAD_ID
    if "touchpoints" in columns:
        columns["touchpoints"][-1] = "[]"
    if "as_of" in columns:
        columns["as_of"][-1] = next((v for v in columns["as_of"] if v is not None), now)
    return columns


def _sample_probabilities(scorer: LeadScorer, leads: pd.DataFrame) -> np.ndarray:
    """The probability of each lead of `leads` (pyfunc input); ValueError when one is not a
    probability."""
    scored = score_pyfunc_input(scorer, leads, {"explain": False})
    by_lead = scored.set_index("lead_id")["probability"].astype(float)
    probability = by_lead.reindex(leads["lead_id"].astype(str)).to_numpy()
    wrong = ~np.isfinite(probability) | (probability < 0) | (probability > 1)
    if wrong.any():
        first = int(np.flatnonzero(wrong)[0])
        raise ValueError(
            f"lead {leads['lead_id'].iloc[first]!r} gets probability {probability[first]}, not "
            "a number between 0 and 1"
        )
    return probability


def record_samples(scorer: LeadScorer, leads: pd.DataFrame, path: str | Path) -> None:
    """Write `leads` (pyfunc input) and a lead without attributes to `path` with the
    probabilities `scorer` gives them (``samples.json``); `ModelCannotScore` if it cannot."""
    columns = _with_empty_lead(leads, scorer)
    frame = pd.DataFrame(columns)  # scored as the loader reads it back, so it is reproducible
    try:
        probability = _sample_probabilities(scorer, frame)
    except Exception as error:
        raise ModelCannotScore(
            f"the trained model cannot score its own sample leads: {type(error).__name__}: "
            f"{error}; it would fail on such leads in the service too"
        ) from error
    document = {"format": 1, "leads": columns, "probability": probability.tolist()}
    Path(path).write_text(json.dumps(document, indent=1))


def check_samples(
    scorer: LeadScorer,
    samples: str | None,
    model: Path,
    label: str,
    warn: Callable[[str], None],
) -> None:
    """`scorer` (model `label`, downloaded to `model`) must reproduce the probabilities recorded
    in `samples` (``samples.json``) within `SAMPLE_TOLERANCE`; `ModelCannotScore` if it does not.
    Without samples (logged before they were recorded) it must score its input example and a
    lead without attributes, and `warn` says the probabilities were not compared."""
    cannot = f"model {label} cannot score its own sample leads"
    if samples is None:
        example = _input_example(model)
        none = pd.DataFrame({"lead_id": []})
        leads = pd.DataFrame(_with_empty_lead(none if example is None else example, scorer))
        try:
            _sample_probabilities(scorer, leads)
        except Exception as error:
            raise ModelCannotScore(f"{cannot}: {type(error).__name__}: {error}") from error
        scored = "its input example and " if example is not None else ""
        warn(
            f"model {label} has no sample leads with recorded probabilities (logged before "
            f"leadscore recorded them): checked that it scores {scored}a lead without "
            "attributes, not that it reproduces the probabilities it gave when trained"
        )
        return
    document = json.loads(Path(samples).read_text())
    leads = pd.DataFrame(document["leads"])
    recorded = np.asarray(document["probability"], dtype=float)
    if recorded.shape != (len(leads),):
        raise ModelCannotScore(
            f"{cannot}: samples.json has {recorded.size} probabilities for {len(leads)} leads"
        )
    try:
        probability = _sample_probabilities(scorer, leads)
    except Exception as error:
        raise ModelCannotScore(f"{cannot}: {type(error).__name__}: {error}") from error
    difference = np.abs(probability - recorded)
    worst = int(np.argmax(difference))
    if not difference[worst] <= SAMPLE_TOLERANCE:
        differ = int((~(difference <= SAMPLE_TOLERANCE)).sum())
        raise ModelCannotScore(
            f"{cannot}: lead {leads['lead_id'].iloc[worst]!r} gets probability "
            f"{probability[worst]:.12f}, it got {recorded[worst]:.12f} when it was trained "
            f"({differ} of {len(leads)} sample leads differ by more than {SAMPLE_TOLERANCE:g}); "
            "its files or this release's feature code differ from the ones that trained it: "
            "serve it with the release that trained it, or train it again"
        )


def _input_example(model: Path) -> pd.DataFrame | None:
    """The MLflow input example saved with the model in directory `model`, if any."""
    from mlflow.models import Model

    try:
        example = Model.load(str(model / "MLmodel")).load_input_example(str(model))
    except Exception as error:  # noqa: BLE001 - an unreadable example is no example
        log.warning("cannot read the input example of the model in %s: %s", model, error)
        return None
    return example if isinstance(example, pd.DataFrame) else None


# --------------------------------------------------------------------------------------------
# Logging: what produced the model


def pip_requirements() -> list[str]:
    """`PIP_PACKAGES` pinned to the versions installed here."""
    out = []
    for name in PIP_PACKAGES:
        try:
            out.append(f"{name}=={importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            out.append(name)
    return out


def model_signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """Input schema: lead_id required, every other column optional (CRM records are sparse);
    params `explain` and `policy` (MLflow passes on only the params a signature declares)."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    columns: list[ColSpec | TensorSpec] = []
    for name in example.columns:
        kind = "double" if example[name].dtype.kind in "fiub" else "string"
        columns.append(ColSpec(kind, name, required=name == "lead_id"))
    params = ParamSchema([ParamSpec("explain", "boolean", True), ParamSpec("policy", "string", "")])
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values: the inputs are declared
        # above (numbers as doubles), and the integer outputs (score, days) are never missing,
        # so the hint is noise in every `train` and `quickstart`
        warnings.filterwarnings("ignore", INTEGER_COLUMN_HINT, UserWarning)
        outputs = infer_signature(example, output).outputs
    return ModelSignature(inputs=Schema(columns), outputs=outputs, params=params)


INTEGER_COLUMN_HINT = "Hint: Inferred schema contains integer column"


def log_model(
    scorer: LeadScorer,
    example: pd.DataFrame,
    evaluation_estimator: CalibratedModel | None = None,
    samples: pd.DataFrame | None = None,
) -> ModelInfo:
    """Log `scorer` as the pyfunc `model` of the active MLflow run (its data files, the entry file,
    the `features` package, signature, input example `example`, pinned requirements), with the
    probabilities it gives `samples` (pyfunc input; default `example`) and a lead without
    attributes (``samples.json``; `ModelCannotScore` if it cannot score them)."""
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory() as tmp:
        paths = save_scorer(scorer, Path(tmp) / "artifacts", evaluation_estimator)
        paths["samples"] = str(Path(tmp) / "artifacts" / SAMPLE_FILES["samples"])
        record_samples(scorer, example if samples is None else samples, paths["samples"])
        output = score_pyfunc_input(scorer, example)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ENTRY_FILE),
            artifacts=paths,
            code_paths=[str(FEATURES_PACKAGE)],
            signature=model_signature(example, output),
            input_example=example,
            pip_requirements=pip_requirements(),
        )


# --------------------------------------------------------------------------------------------
# File hashes: recorded when a version is registered, checked whenever it is loaded
#
# The trust root is the registry: hashes.json lies in the artifact store beside the files it
# lists, and the sha256 of hashes.json itself is a tag of the model version. Whoever can write the
# artifact store but not the registry can change a file, or hashes.json, or both, but not the tag:
# every such change is refused. Removing hashes.json does not make a version "older" either: the
# tag says it has one.


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(directory: str | Path) -> dict[str, str]:
    """{path inside `directory` (with /): sha256} of every file in it, but `HASHES_FILE` and
    what MLflow and Python write there at run time (`MLFLOW_RUNTIME_FILES`, `PYTHON_CACHE`)."""
    directory = Path(directory)
    skipped = {HASHES_FILE, *MLFLOW_RUNTIME_FILES}
    hashes = {}
    for folder, folders, names in os.walk(directory):
        folders[:] = [f for f in folders if f != PYTHON_CACHE]
        for name in names:
            path = Path(folder, name)
            relative = path.relative_to(directory).as_posix()
            if relative not in skipped:
                hashes[relative] = _sha256(path)
    return dict(sorted(hashes.items()))


def hashes_document(directory: str | Path) -> bytes:
    """The bytes of `HASHES_FILE` for the model in `directory` (the same files give the same
    bytes: registering a logged model twice records the same hash)."""
    document = {"format": 1, "algorithm": "sha256", "files": file_hashes(directory)}
    return json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"


def check_file_hashes(model: Path, digest: str, label: str) -> None:
    """Every file of the model downloaded to `model` must be the one recorded in its
    `HASHES_FILE`, and that file the one whose sha256 `digest` the registry holds; otherwise
    `ModelFilesChanged` names the files. Nothing of the model has been read yet."""
    refused = f"model {label} is refused: "
    fix = (
        "nothing of it was loaded. Restore its files from a backup, or register a new version "
        "(`leadscore train`)"
    )
    manifest = model / HASHES_FILE
    if not manifest.is_file():
        raise ModelFilesChanged(
            f"{refused}{HASHES_FILE} is missing, yet the registry recorded its sha256 when the "
            f"version was registered (tag {HASHES_TAG}); {fix}"
        )
    raw = manifest.read_bytes()
    if hashlib.sha256(raw).hexdigest() != digest:
        raise ModelFilesChanged(
            f"{refused}{HASHES_FILE} was changed since the version was registered (its sha256 is "
            f"not the one in the registry tag {HASHES_TAG}); {fix}"
        )
    recorded = json.loads(raw)["files"]
    present = file_hashes(model)
    problems = []
    for name in sorted(set(recorded) | set(present)):
        if name not in present:
            problems.append(f"{name} is missing")
        elif name not in recorded:
            problems.append(f"{name} was not there when it was registered")
        elif present[name] != recorded[name]:
            problems.append(f"{name} was changed since it was registered")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ModelFilesChanged(
            f"{refused}its files are not the ones recorded when it was registered: "
            f"{'; '.join(problems[:5])}{more}; {fix}"
        )


def record_file_hashes(model_uri: str, tracking_uri: str | None = None) -> str:
    """Write `HASHES_FILE` (the sha256 of each file) into the directory of the logged model at
    `model_uri`; returns the sha256 of `HASHES_FILE`, for the version tag `HASHES_TAG`
    (`training.registry.register` sets it when it registers the version)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    _use_tracking_uri(tracking_uri)
    root = _model_root(model_uri)
    with tempfile.TemporaryDirectory() as tmp:
        document = hashes_document(_download_model(root, Path(tmp) / "model"))
        path = Path(tmp) / HASHES_FILE
        path.write_bytes(document)
        get_artifact_repository(root).log_artifact(str(path))
    return hashlib.sha256(document).hexdigest()


# --------------------------------------------------------------------------------------------
# Loading from MLflow: checked files, data only


def _use_tracking_uri(tracking_uri: str | None) -> None:
    """Point MLflow (tracking and registry) at `tracking_uri`; None: as configured already."""
    if tracking_uri is not None:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)


def resolve_version(uri: str, tracking_uri: str | None = None) -> str | None:
    """The version an alias URI (`models:/NAME@ALIAS`) points at now; None for other URIs."""
    ref = parse_model_uri(uri)
    if ref is None or ref.alias is None:
        return None
    from mlflow import MlflowClient

    _use_tracking_uri(tracking_uri)
    return str(MlflowClient().get_model_version_by_alias(ref.name, ref.alias).version)


def registry_unreachable(error: BaseException) -> bool:
    """Whether `error` (from loading a model) means the registry or artifact store did not
    answer at all, rather than answering no."""
    import requests

    seen: BaseException | None = error
    for _ in range(10):  # the cause chain, as far as it goes
        if seen is None:
            return False
        if isinstance(seen, (requests.ConnectionError, requests.Timeout, ConnectionError)):
            return True
        text = str(seen)
        if text.startswith("API request to ") and (
            "failed with exception" in text or "failed with timeout" in text
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _download_model(root: str, directory: str | Path) -> Path:
    """Download every file of the model at `root` into `directory`; returns the model's local
    directory. Nothing in it is run."""
    import mlflow.artifacts

    Path(directory).mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=root.rstrip("/"), dst_path=str(directory)
    )
    return Path(local)


def _data_files(model: Path, root: str) -> dict[str, str]:
    """{artifact name: local path} of the data files the MLmodel file in `model` lists."""
    from mlflow.models import Model

    flavor = Model.load(str(model / "MLmodel")).flavors.get("python_function", {})
    listed = flavor.get("artifacts") or {}
    missing = [name for name in FILES if name not in listed]
    if missing:
        raise ValueError(
            f"{root} is not a lead scoring model (its MLmodel lists no {', '.join(missing)} "
            "artifact); register a model trained with `leadscore train`"
        )
    files = {}
    inside = model.resolve()
    optional = (*EVALUATION_FILES, *OUTLOOK_FILES, *SUBSCORE_FILES, *SEGMENT_FILES)
    for name in (*FILES, *optional, *SAMPLE_FILES):
        if name in listed:
            path = (model / listed[name]["path"]).resolve()
            if not path.is_relative_to(inside) or not path.is_file():
                raise ValueError(
                    f"{root}: its MLmodel lists {listed[name]['path']!r} as the {name} file, "
                    "which is not a file of the model; register a model trained with "
                    "`leadscore train`"
                )
            files[name] = str(path)
    return files


def _storage_uri(ref: ModelRef) -> str:
    """Where the files of a registered version (not an alias) or a logged model are stored."""
    from mlflow import MlflowClient

    if not ref.registered:
        return MlflowClient().get_logged_model(ref.name).artifact_location
    if ref.version is not None and ref.version.isdigit():  # one registry call, not one per file
        return MlflowClient().get_model_version_download_uri(ref.name, ref.version)
    return ref.uri  # "latest" or a stage: MLflow resolves it


def _model_root(uri: str) -> str:
    """Where the files of the model at `uri` are stored (an alias resolved to its version)."""
    ref = parse_model_uri(uri)
    if ref is not None and ref.alias is not None:
        ref = ModelRef(ref.name, version=resolve_version(uri))
    return uri if ref is None else _storage_uri(ref)


def _recorded_digest(ref: ModelRef | None) -> str | None:
    """The `HASHES_TAG` of a registered version number; None for anything else."""
    if ref is None or ref.version is None or not ref.version.isdigit():
        return None
    from mlflow import MlflowClient

    return MlflowClient().get_model_version(ref.name, ref.version).tags.get(HASHES_TAG)


def load_model_scorer(
    uri: str,
    tracking_uri: str | None = None,
    evaluation: bool = False,
    compile: bool = True,
    *,
    require_hashes: bool = False,
    warn: Callable[[str], None] | None = None,
) -> LeadScorer:
    """Load a logged or registered model (`models:/lead-scoring@champion`, `models:/NAME/3`,
    `runs:/RUN_ID/model`) as a scorer, from its data files (no bundled code runs).

    An alias is resolved once and that version loaded; `metadata["name"]`/`["version"]` then
    name the registered version. `tracking_uri`: the MLflow tracking server and registry (None:
    as configured). `evaluation=True` gives the model fitted without the holdout and `compile`
    whether the model runs as numpy (see `load_scorer`).

    Refused (`ModelRefused`, naming the file or lead): a file that is not the one recorded when
    the version was registered (`check_file_hashes`, before any file is read), and a served
    model that does not reproduce its sample leads' probabilities (`check_samples`). A version
    registered without hashes is refused with `require_hashes`, else loads with a warning, as
    one without samples does: `warn` gets the text (default: logged).
    """
    warn = warn or log.warning
    _use_tracking_uri(tracking_uri)
    ref = parse_model_uri(uri)
    if ref is not None and ref.alias is not None:
        ref = ModelRef(ref.name, version=resolve_version(uri))
    label = f"v{ref.version}" if ref is not None and ref.version is not None else uri
    digest = _recorded_digest(ref)
    root = uri if ref is None else _storage_uri(ref)
    with tempfile.TemporaryDirectory() as tmp:
        model = _download_model(root, tmp)
        if digest is not None:
            check_file_hashes(model, digest, label)
        elif require_hashes:
            raise ModelFilesChanged(
                f"model {label} is refused: the registry holds no file hashes for it (tag "
                f"{HASHES_TAG}: it was registered before leadscore recorded them), and models "
                "whose files cannot be checked are not loaded; register a new version "
                "(`leadscore train`)"
            )
        else:
            warn(
                f"model {label} has no file hashes in the registry (tag {HASHES_TAG}: registered "
                "before leadscore recorded them): its files are not checked"
            )
        files = _data_files(model, root)
        scorer = load_scorer(files, evaluation=evaluation, compile=compile)
        if not evaluation:
            check_samples(scorer, files.get("samples"), model, label, warn)
    if ref is not None and ref.registered:
        scorer.metadata["name"], scorer.metadata["version"] = ref.name, ref.version
    return scorer


# --------------------------------------------------------------------------------------------
# The pyfunc that `mlflow models serve` and `mlflow.pyfunc.load_model` run


@functools.cache
def pyfunc_model_class() -> type:
    """The `mlflow.pyfunc.PythonModel` of a lead scoring model (made on first use: its base class
    needs mlflow)."""
    from mlflow.pyfunc import PythonModel

    class LeadScoringModel(PythonModel):
        """pyfunc wrapper: raw leads in the contract format -> scores, grades, reasons."""

        def load_context(self, context: Any) -> None:
            self.artifacts = dict(context.artifacts)
            self.scorer = load_scorer(self.artifacts)

        def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None):
            return score_pyfunc_input(self.scorer, model_input, params)

    return LeadScoringModel


def set_pyfunc_model() -> None:
    """Hand MLflow the python model; the entry file (`pyfunc_entry.py`) calls this when MLflow
    runs it (models-from-code)."""
    import mlflow.models

    mlflow.models.set_model(pyfunc_model_class()())
