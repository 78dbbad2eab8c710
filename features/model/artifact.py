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
- ``holdout.parquet``: held-out leads' `probability`, `label`, `as_of` (for policy simulation)
- ``metadata.json``: name, version, trained_at, metrics, holdout_weeks, features, run id
- ``evaluation_estimator.skops`` and ``evaluation.json`` (only when the served estimator was
  refitted on training + holdout): the model fitted without the holdout and its calibration map,
  which the champion/challenger gate scores (the refit may have learned a later run's holdout)

**Loading.** `load_model_scorer` downloads the MLmodel file and those data files only and builds
the `LeadScorer` with this process's code: it never runs the python file or the copy of
`features/` bundled with the model, so a version registered by any release loads the same way.
`mlflow models serve` and `mlflow.pyfunc.load_model` do run the bundled code: the entry file
`pyfunc_entry.py` calls `set_pyfunc_model`, whose python model reads the same files.

**Pyfunc input**: a DataFrame with `lead_id`, the attribute columns, optional `created_at` and
`as_of`, and `touchpoints` (a JSON string: list of {occurred_at, channel, activity, campaign,
value}) when the model uses touchpoints. Params (optional): `explain` (false leaves out the
reasons) and `policy` (JSON text of a qualification policy, or of `GET /v1/policy`'s answer: the
policy marketing ops saved; default: the model's own). Output: `probability`, `score`, `grade`,
`decision`, `lead_id`, `reasons_for`, `reasons_against` (JSON strings), `hard_rule`, `policy`
(which policy decided: `features.policy.applied`).
"""

from __future__ import annotations

import functools
import json
import math
import tempfile
from dataclasses import dataclass
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
                "them to features.model.artifact.TRUSTED_TYPES only if they are safe to load"
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
    return LeadScorer(
        featurizer,
        CalibratedModel(model, state["calibration"], compile=compile),
        policy=policy,
        metadata=metadata,
        holdout=holdout,
        baseline=baseline,
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
    return out


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
    scored = scorer.score_frame(frame, touchpoints, explain=explain, policy=applied.policy)
    out = pyfunc_output(scored)
    out["policy"] = applied.label
    return out


def pyfunc_input_example(
    frame: pd.DataFrame, touchpoints: pd.DataFrame | None, uses_touchpoints: bool
) -> pd.DataFrame:
    """A few raw leads in the pyfunc input format (timestamps as ISO text, touchpoints as JSON)."""
    example = frame.head(3).copy()
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
        for lead_id, as_of in zip(frame.head(3)["lead_id"], frame.head(3).get("as_of", [None] * 3)):
            rows = (
                touchpoints[touchpoints["lead_id"] == lead_id] if touchpoints is not None else None
            )
            if rows is not None and as_of is not None:
                rows = rows[rows["occurred_at"] <= as_of]
            items = [] if rows is None else [
                {"occurred_at": r.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "channel": r.channel,
                 "activity": r.activity, "campaign": None if pd.isna(r.campaign) else r.campaign,
                 "value": None if pd.isna(r.value) else float(r.value)}
                for r in rows.itertuples()
            ]  # fmt: skip
            texts.append(json.dumps(items))
        example["touchpoints"] = texts
    return example.reset_index(drop=True)


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
    return ModelSignature(
        inputs=Schema(columns), outputs=infer_signature(example, output).outputs, params=params
    )


def log_model(
    scorer: LeadScorer,
    example: pd.DataFrame,
    evaluation_estimator: CalibratedModel | None = None,
) -> ModelInfo:
    """Log `scorer` as the pyfunc `model` of the active MLflow run (its data files, the entry file,
    the `features` package, signature, input example `example`, pinned requirements)."""
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory() as tmp:
        paths = save_scorer(scorer, Path(tmp) / "artifacts", evaluation_estimator)
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
# Loading from MLflow: data files only


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


def _download_files(root: str, directory: str) -> dict[str, str]:
    """Download the MLmodel file of the model at `root` and the data files it lists; returns
    {artifact name: local path}. Nothing else: the bundled code stays where it is."""
    import mlflow.artifacts
    from mlflow.models import Model

    root = root.rstrip("/")
    mlmodel = mlflow.artifacts.download_artifacts(f"{root}/MLmodel", dst_path=directory)
    listed = Model.load(mlmodel).flavors.get("python_function", {}).get("artifacts") or {}
    missing = [name for name in FILES if name not in listed]
    if missing:
        raise ValueError(
            f"{root} is not a lead scoring model (its MLmodel lists no {', '.join(missing)} "
            "artifact); register a model trained with `leadscore train`"
        )
    return {
        name: mlflow.artifacts.download_artifacts(
            f"{root}/{listed[name]['path']}", dst_path=directory
        )
        for name in (*FILES, *EVALUATION_FILES)
        if name in listed
    }


def _storage_uri(ref: ModelRef) -> str:
    """Where the files of a registered version (not an alias) or a logged model are stored."""
    from mlflow import MlflowClient

    if not ref.registered:
        return MlflowClient().get_logged_model(ref.name).artifact_location
    if ref.version is not None and ref.version.isdigit():  # one registry call, not one per file
        return MlflowClient().get_model_version_download_uri(ref.name, ref.version)
    return ref.uri  # "latest" or a stage: MLflow resolves it


def load_model_scorer(
    uri: str, tracking_uri: str | None = None, evaluation: bool = False, compile: bool = True
) -> LeadScorer:
    """Load a logged or registered model (`models:/lead-scoring@champion`, `models:/NAME/3`,
    `runs:/RUN_ID/model`) as a scorer, from its data files (no bundled code runs).

    An alias is resolved once and that version loaded; `metadata["name"]`/`["version"]` then
    name the registered version. `tracking_uri`: the MLflow tracking server and registry (None:
    as configured). `evaluation=True` gives the model fitted without the holdout and `compile`
    whether the model runs as numpy (see `load_scorer`).
    """

    _use_tracking_uri(tracking_uri)
    ref = parse_model_uri(uri)
    if ref is not None and ref.alias is not None:
        ref = ModelRef(ref.name, version=resolve_version(uri))
    root = uri if ref is None else _storage_uri(ref)
    with tempfile.TemporaryDirectory() as tmp:
        scorer = load_scorer(_download_files(root, tmp), evaluation=evaluation, compile=compile)
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
