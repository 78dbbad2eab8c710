"""The loader's checks, on MLflow's real SQLite registry: every file of a registered version is
the one recorded when it was registered (file hashes), and the model reproduces the probabilities
of its own sample leads before anything serves it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from features.model import artifact
from features.model.artifact import ModelCannotScore, ModelFilesChanged
from tests.features.model.registered import (
    MARKER_CODE,
    log_and_register,
    recalibrated,
    svc_scorer,
    tampered,
    version_directory,
)
from tests.features.model.test_artifact import _example, _scorer

REFUSED = "model v1 is refused: its files are not the ones recorded when it was registered: "
FIX = (
    "; nothing of it was loaded. Restore its files from a backup, or register a new version "
    "(`leadscore train`)"
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """v1: a boosted-trees scorer registered as `leadscore train` does. v2: the layout of versions
    logged before sample leads (input example only), registered the same way. v3: an SVC, which
    refuses NaN, in that same layout (`log_model` refuses to log it: see the test below)."""
    import mlflow

    root = tmp_path_factory.mktemp("checks-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("t", artifact_location=(root / "store").as_uri())
    scorer, X = _scorer(1)
    versions = [
        log_and_register(experiment, scorer),
        log_and_register(experiment, _scorer(2)[0], before_checks=True),
        log_and_register(experiment, svc_scorer(), before_checks=True),
    ]
    assert versions == ["1", "2", "3"]
    yield {"uri": uri, "root": root, "experiment": experiment, "scorer": scorer, "X": X}
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_registration_records_the_hash_of_every_file(registry):
    from mlflow import MlflowClient

    directory = version_directory("1")
    document = (directory / artifact.HASHES_FILE).read_bytes()
    tag = MlflowClient().get_model_version("lead-scoring", "1").tags[artifact.HASHES_TAG]
    assert tag == hashlib.sha256(document).hexdigest()
    files = json.loads(document)["files"]
    on_disk = sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != artifact.HASHES_FILE
    )
    assert sorted(files) == on_disk
    for name in ("MLmodel", "pyfunc_entry.py", "artifacts/estimator.skops",
                 "artifacts/samples.json", "code/features/model/artifact.py"):  # fmt: skip
        assert files[name] == hashlib.sha256((directory / name).read_bytes()).hexdigest()


def test_a_checked_version_loads_without_warnings(registry):
    warnings: list[str] = []
    loaded = artifact.load_model_scorer("models:/lead-scoring/1", warn=warnings.append)
    assert warnings == []
    X = registry["X"]
    np.testing.assert_array_equal(
        loaded.estimator.predict_proba(X), registry["scorer"].estimator.predict_proba(X)
    )


@pytest.mark.parametrize(
    "file,content,problem",
    [
        ("artifacts/scorer.json", "recalibrated",
         "artifacts/scorer.json was changed since it was registered"),
        ("artifacts/policy.json", None, "artifacts/policy.json is missing"),
        ("pyfunc_entry.py", "marker", "pyfunc_entry.py was changed since it was registered"),
        ("code/features/model/artifact.py", "marker",
         "code/features/model/artifact.py was changed since it was registered"),
        ("code/features/sitecustomize.py", "marker",
         "code/features/sitecustomize.py was not there when it was registered"),
    ],
)  # fmt: skip
def test_a_changed_missing_or_extra_file_is_refused_by_name_and_nothing_runs(
    registry, tmp_path, file, content, problem
):
    marker = tmp_path / "ran"
    if content == "marker":
        content = MARKER_CODE.format(path=str(marker)).encode()
    elif content == "recalibrated":
        content = recalibrated("1")
    with tampered("1", file, content), pytest.raises(ModelFilesChanged) as error:
        artifact.load_model_scorer("models:/lead-scoring/1")
    assert str(error.value) == REFUSED + problem + FIX
    assert not marker.exists()
    artifact.load_model_scorer("models:/lead-scoring/1")  # restored: loads again


def test_what_mlflow_writes_when_it_serves_the_version_is_not_a_change(registry):
    """`mlflow.pyfunc.load_model("models:/...")` on a local store writes registered_model_meta
    into the version's directory, and Python may write byte code beside the bundled code:
    neither is read by leadscore, so neither gets the version refused."""
    import mlflow

    mlflow.pyfunc.load_model("models:/lead-scoring/1")
    assert (version_directory("1") / "registered_model_meta").is_file()
    with tampered("1", "code/features/__pycache__/scorer.cpython-311.pyc", b"\x00byte code"):
        warnings: list[str] = []
        artifact.load_model_scorer("models:/lead-scoring/1", warn=warnings.append)
    assert warnings == []


def test_a_changed_hash_file_is_refused_even_when_it_lists_the_changed_files(registry):
    """Whoever can write the artifact store can rewrite hashes.json too: not the registry tag."""
    directory = version_directory("1")
    with tampered("1", "artifacts/scorer.json", recalibrated("1")):
        rewritten = artifact.hashes_document(directory)
        with tampered("1", artifact.HASHES_FILE, rewritten), pytest.raises(ModelFilesChanged) as e:
            artifact.load_model_scorer("models:/lead-scoring/1")
    assert str(e.value) == (
        "model v1 is refused: hashes.json was changed since the version was registered (its "
        "sha256 is not the one in the registry tag leadscore.hashes_sha256)" + FIX
    )
    with tampered("1", artifact.HASHES_FILE, None), pytest.raises(ModelFilesChanged) as e:
        artifact.load_model_scorer("models:/lead-scoring/1")
    assert str(e.value) == (
        "model v1 is refused: hashes.json is missing, yet the registry recorded its sha256 when "
        "the version was registered (tag leadscore.hashes_sha256)" + FIX
    )


def test_a_version_registered_without_hashes_loads_with_a_warning_or_is_refused(registry):
    from mlflow import MlflowClient

    client = MlflowClient()
    source = client.get_model_version("lead-scoring", "1")
    unhashed = client.create_model_version("lead-scoring", source.source, run_id=source.run_id)
    uri = f"models:/lead-scoring/{unhashed.version}"
    warnings: list[str] = []
    artifact.load_model_scorer(uri, warn=warnings.append)
    assert warnings == [
        f"model v{unhashed.version} has no file hashes in the registry (tag "
        "leadscore.hashes_sha256: registered before leadscore recorded them): its files are "
        "not checked"
    ]
    with pytest.raises(ModelFilesChanged) as error:
        artifact.load_model_scorer(uri, require_hashes=True)
    assert str(error.value) == (
        f"model v{unhashed.version} is refused: the registry holds no file hashes for it (tag "
        "leadscore.hashes_sha256: it was registered before leadscore recorded them), and models "
        "whose files cannot be checked are not loaded; register a new version (`leadscore train`)"
    )
    client.delete_model_version("lead-scoring", unhashed.version)


def test_sample_leads_are_recorded_with_their_probabilities(registry):
    samples = json.loads((version_directory("1") / "artifacts/samples.json").read_text())
    leads = samples["leads"]
    assert leads["lead_id"] == ["L0", "L1", "L2", artifact.EMPTY_LEAD_ID]
    # the lead without attributes: only its id, the moment it is scored and no touchpoints
    assert {k: v[-1] for k, v in leads.items() if v[-1] is not None} == {
        "lead_id": artifact.EMPTY_LEAD_ID,
        "as_of": "2024-03-02T00:00:00Z",
        "touchpoints": "[]",
    }
    expected = artifact.score_pyfunc_input(registry["scorer"], _frame(leads))["probability"]
    np.testing.assert_allclose(samples["probability"], expected, rtol=0, atol=1e-12)


def _frame(columns):
    import pandas as pd

    return pd.DataFrame(columns)


def test_a_model_that_does_not_reproduce_its_samples_is_refused(registry, monkeypatch):
    """As when this release computes a feature or the calibration differently from the one that
    trained the model."""
    from features.model.calibration import CalibratedModel

    calibrate = CalibratedModel.calibrate
    monkeypatch.setattr(CalibratedModel, "calibrate", lambda self, raw: calibrate(self, raw) * 0.99)
    with pytest.raises(ModelCannotScore) as error:
        artifact.load_model_scorer("models:/lead-scoring/1")
    message = str(error.value)
    assert message.startswith("model v1 cannot score its own sample leads: lead ")
    assert message.endswith(
        "(4 of 4 sample leads differ by more than 1e-09); its files or this release's feature "
        "code differ from the ones that trained it: serve it with the release that trained it, "
        "or train it again"
    )
    # the evaluation model (training's champion gate) has no samples of its own: not checked
    artifact.load_model_scorer("models:/lead-scoring/1", evaluation=True)


def test_a_version_without_samples_scores_its_input_example_and_warns(registry):
    warnings: list[str] = []
    artifact.load_model_scorer("models:/lead-scoring/2", warn=warnings.append)
    assert warnings == [
        "model v2 has no sample leads with recorded probabilities (logged before leadscore "
        "recorded them): checked that it scores its input example and a lead without "
        "attributes, not that it reproduces the probabilities it gave when trained"
    ]


def test_a_model_that_refuses_missing_values_is_refused_at_load(registry):
    with pytest.raises(ModelCannotScore) as error:
        artifact.load_model_scorer("models:/lead-scoring/3")
    assert str(error.value).startswith(
        "model v3 cannot score its own sample leads: ValueError: Input X contains NaN."
    )


def test_training_refuses_to_log_a_model_that_cannot_score_a_lead_without_attributes(registry):
    import mlflow

    with (
        mlflow.start_run(experiment_id=registry["experiment"]),
        pytest.raises(ModelCannotScore) as error,
    ):
        artifact.log_model(svc_scorer(), _example())
    assert str(error.value).startswith(
        "the trained model cannot score its own sample leads: ValueError: Input X contains NaN."
    )
    assert str(error.value).endswith("; it would fail on such leads in the service too")
