"""Small models registered in a real MLflow store (SQLite in a temporary directory), the way
`leadscore train` registers them, for the tests of the model checks: file hashes and sample leads.

`tampered` changes one file of a registered version in the artifact store (what someone with
write access to the store, but not to the registry, can do) and puts it back afterwards.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from features.model import artifact
from tests.features.model.test_artifact import _example, _scorer

# Written by bundled code if it ever runs: the tests assert it never appears.
MARKER_CODE = "import pathlib\npathlib.Path({path!r}).write_text('the bundled code ran')\n"


def svc_scorer(seed: int = 4):
    """A scorer whose estimator (an SVC) refuses NaN: it scores complete leads, and fails on any
    lead with a missing number, as the first lead without attributes shows."""
    from sklearn.svm import SVC

    scorer, X = _scorer(seed)
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # SVC(probability=True) is deprecated
        scorer.estimator.model = SVC(probability=True, random_state=seed).fit(np.nan_to_num(X), y)
    scorer.estimator.compiled = None
    return scorer


def log_and_register(
    experiment: str, scorer, name: str = "lead-scoring", before_checks: bool = False
) -> str:
    """Log `scorer` and register it with `training.registry.register` (file hashes recorded);
    returns the version. `before_checks`: logged as releases before the sample leads did (no
    samples.json; its input example is `_example()`)."""
    import mlflow

    from training.registry import register

    with mlflow.start_run(experiment_id=experiment), tempfile_directory() as tmp:
        if before_checks:
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(artifact.ENTRY_FILE),
                artifacts=artifact.save_scorer(scorer, tmp / "artifacts"),
                code_paths=[str(artifact.FEATURES_PACKAGE)],
                input_example=_example(),
            )
        else:
            info = artifact.log_model(scorer, _example())
    return register(info.model_uri, name)


@contextmanager
def tempfile_directory() -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def version_directory(version: str, name: str = "lead-scoring") -> Path:
    """Where the files of `version` are in the (local) artifact store."""
    from mlflow import MlflowClient

    uri = MlflowClient().get_model_version_download_uri(name, version)
    assert uri.startswith("file://"), uri
    return Path(uri[len("file://") :])


@contextmanager
def tampered(version: str, file: str, content: bytes | None) -> Iterator[Path]:
    """Replace `file` of `version` in the artifact store with `content` (None: delete it; a file
    that was not there is added), then restore it."""
    path = version_directory(version) / file
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.read_bytes() if path.exists() else None
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    try:
        yield path
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)


def recalibrated(version: str) -> bytes:
    """`version`'s scorer.json with its calibration moved: a well-formed file that loads and
    scores, only not the registered one (every lead's probability shifts)."""
    state = json.loads((version_directory(version) / "artifacts/scorer.json").read_text())
    state["calibration"]["b"] += 2.0
    return json.dumps(state).encode()
