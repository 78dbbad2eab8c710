"""The model artifact: `models:/` URIs read once, and a registered model loaded from its data files
without running the code bundled with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.model import artifact
from features.model.artifact import ModelRef, parse_model_uri


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("models:/lead-scoring@champion", ModelRef("lead-scoring", alias="champion")),
        ("models:/lead-scoring@champion/", ModelRef("lead-scoring", alias="champion")),
        ("models:/lead-scoring/3", ModelRef("lead-scoring", version="3")),
        ("models:/lead-scoring/latest", ModelRef("lead-scoring", version="latest")),
        ("models:/m-0123abcd", ModelRef("m-0123abcd")),
        ("runs:/0123abcd/model", None),
        ("/srv/models/lead-scoring", None),
        ("models://profile@databricks/lead-scoring/3", None),  # MLflow resolves these itself
    ],
)
def test_model_uris_are_read_as_mlflow_reads_them(uri, expected):
    ref = parse_model_uri(uri)
    assert ref == expected
    if ref is not None:
        assert parse_model_uri(ref.uri) == ref
        assert ref.registered == (ref.alias is not None or ref.version is not None)


@pytest.mark.parametrize(
    "uri", ["models:/", "models:/@champion", "models:/lead-scoring@", "models:/a/b/3"]
)
def test_a_malformed_model_uri_is_refused_with_the_forms_that_work(uri):
    with pytest.raises(ValueError) as error:
        parse_model_uri(uri)
    assert str(error.value) == (
        f"{uri!r} is not a model URI: use models:/NAME@ALIAS (such as "
        "models:/lead-scoring@champion), models:/NAME/VERSION or models:/MODEL_ID"
    )


def test_importing_the_artifact_module_does_not_import_mlflow():
    """The CLI reads the registry names at start; importing mlflow takes seconds."""
    code = (
        "import sys, features.model.artifact as a; "
        "print(a.MODEL_NAME, a.CHAMPION, a.CHALLENGER, "
        "sorted(m for m in ('mlflow', 'skops', 'sklearn') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert out.stdout.split() == ["lead-scoring", "champion", "challenger", "[]"]


def test_a_model_without_the_scorer_files_is_refused_by_name(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: other\n")
    with pytest.raises(ValueError) as error:
        artifact.load_model_scorer(str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path} is not a lead scoring model (its MLmodel lists no featurizer, estimator, "
        "scorer, policy, holdout, metadata artifact); register a model trained with "
        "`leadscore train`"
    )


# --------------------------------------------------------------------------------------------
# A small scorer registered in a real MLflow store (SQLite in a temporary directory)


def _scorer(seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    from features.model.calibration import CalibratedModel
    from features.model.reasons import typical_lead
    from features.model.scorer import LeadScorer
    from tests.features.test_featurizer import fitted

    featurizer = fitted()
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, len(featurizer.get_feature_names_out())))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=10, random_state=seed).fit(X, y)
    scorer = LeadScorer(
        featurizer,
        CalibratedModel(model, {"method": "sigmoid", "a": 1.2, "b": -0.1}),
        metadata={"name": "lead-scoring", "version": None, "seed": seed},
        baseline=typical_lead(X, featurizer.categorical_mask_),
    )
    return scorer, X


def _example() -> pd.DataFrame:
    from tests.features.test_featurizer import training_leads

    leads = training_leads().drop(columns=["label"]).head(3)
    example = pd.DataFrame({"lead_id": leads["lead_id"]})
    for column in ("industry", "Job Title"):
        example[column] = [None if pd.isna(v) else str(v) for v in leads[column]]
    example["employees"] = leads["employees"].astype(float)
    example["opted_in"] = leads["opted_in"].astype(float)
    for column in ("created_at", "last_visit"):
        example[column] = leads[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    example["as_of"] = "2024-03-02T00:00:00Z"
    example["touchpoints"] = json.dumps([])
    return example.reset_index(drop=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Version 1: refitted (served + evaluation estimators), logged by `artifact.log_model`.
    Version 2: the layout of versions logged before refits (no evaluation files), its entry file
    named `artifact.py`. Both files MLflow would run are then replaced by ones that raise."""
    import mlflow
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("artifact-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("t", artifact_location=(root / "store").as_uri())
    served, X = _scorer(1)
    evaluation, _ = _scorer(2)
    old, _ = _scorer(3)
    with mlflow.start_run(experiment_id=experiment):
        info = artifact.log_model(served, _example(), evaluation.estimator)
    with mlflow.start_run(experiment_id=experiment):
        entry = root / "old" / "artifact.py"
        entry.parent.mkdir()
        entry.write_text(artifact.ENTRY_FILE.read_text())
        old_info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(entry),
            artifacts=artifact.save_scorer(old, root / "old" / "artifacts"),
            code_paths=[str(artifact.FEATURES_PACKAGE)],
        )
    client = MlflowClient()
    for model_info in (info, old_info):
        mlflow.register_model(model_info.model_uri, "lead-scoring")
    client.set_registered_model_alias("lead-scoring", "champion", "1")
    raises = "raise RuntimeError('the bundled code ran')\n"
    for version, entry_name in (("1", artifact.ENTRY_FILE.name), ("2", "artifact.py")):
        location = Path(client.get_model_version_download_uri("lead-scoring", version)[7:])
        for path in (location / entry_name, location / "code/features/model/artifact.py"):
            assert path.is_file(), path
            path.write_text(raises)
    yield {"served": served, "evaluation": evaluation, "old": old, "X": X, "uri": uri}
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_mlflow_itself_would_run_the_replaced_files(registry):
    import mlflow

    for version in ("1", "2"):
        with pytest.raises(Exception, match="the bundled code ran"):
            mlflow.pyfunc.load_model(f"models:/lead-scoring/{version}")


def test_a_registered_version_loads_from_its_data_files_without_running_its_code(registry):
    X = registry["X"]
    served = artifact.load_model_scorer("models:/lead-scoring@champion", registry["uri"])
    assert (served.metadata["name"], served.metadata["version"]) == ("lead-scoring", "1")
    assert served.metadata["seed"] == 1
    np.testing.assert_array_equal(
        served.estimator.predict_proba(X), registry["served"].estimator.predict_proba(X)
    )
    evaluated = artifact.load_model_scorer("models:/lead-scoring/1", evaluation=True)
    np.testing.assert_array_equal(
        evaluated.estimator.predict_proba(X), registry["evaluation"].estimator.predict_proba(X)
    )
    assert evaluated.estimator.calibration == registry["evaluation"].estimator.calibration
    assert served.estimator.compiled is not None
    plain = artifact.load_model_scorer("models:/lead-scoring/1", compile=False)
    assert plain.estimator.compiled is None


def test_a_version_logged_before_refits_loads_its_one_estimator_for_both_uses(registry):
    X = registry["X"]
    expected = registry["old"].estimator.predict_proba(X)
    for evaluation in (False, True):
        old = artifact.load_model_scorer("models:/lead-scoring/2", evaluation=evaluation)
        assert old.metadata["version"] == "2" and old.metadata["seed"] == 3
        np.testing.assert_array_equal(old.estimator.predict_proba(X), expected)


def test_the_version_an_alias_points_at_now(registry):
    from mlflow import MlflowClient

    assert artifact.resolve_version("models:/lead-scoring@champion", registry["uri"]) == "1"
    MlflowClient().set_registered_model_alias("lead-scoring", "champion", "2")
    try:
        assert artifact.resolve_version("models:/lead-scoring@champion") == "2"
        loaded = artifact.load_model_scorer("models:/lead-scoring@champion")
        assert loaded.metadata["version"] == "2" and loaded.metadata["seed"] == 3
    finally:
        MlflowClient().set_registered_model_alias("lead-scoring", "champion", "1")
    assert artifact.resolve_version("models:/lead-scoring/2") is None
    assert artifact.resolve_version("runs:/0123abcd/model") is None


def test_the_signature_is_inferred_without_mlflows_integer_column_hint():
    """`train` and `quickstart` printed MLflow's "integer columns cannot represent missing
    values" hint on every run: the inputs are declared as doubles, the integer outputs are never
    missing. The output schema still says which outputs are integers."""
    import warnings

    example = pd.DataFrame({"lead_id": ["L-1", "L-2"], "employees": [10, 200]})
    output = pd.DataFrame({"probability": [0.2, 0.7], "score": [20, 70], "lead_id": ["L-1", "L-2"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        signature = artifact.model_signature(example, output)
    inputs = {c.name: c.type.name for c in signature.inputs.inputs}
    outputs = {c.name: c.type.name for c in signature.outputs.inputs}
    assert inputs == {"lead_id": "string", "employees": "double"}
    assert outputs == {"probability": "double", "score": "long", "lead_id": "string"}
