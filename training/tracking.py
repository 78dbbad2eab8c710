"""MLflow set-up: where runs and models are stored.

`MLFLOW_TRACKING_URI` wins; otherwise MLflow's embedded SQLite store `mlflow.db` in the working
directory (artifacts next to it in `mlartifacts/`), so `leadscore train` works with no server.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_EXPERIMENT = "lead-scoring"


def tracking_uri() -> str:
    """The tracking URI in force: `MLFLOW_TRACKING_URI`, else sqlite:///<cwd>/mlflow.db."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configure_tracking(experiment: str | None = None) -> str:
    """Point MLflow at the tracking store (and registry) and select the experiment.

    Returns the experiment id. With the default SQLite store, artifacts go to `mlartifacts/`
    beside the database.
    """
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = experiment or DEFAULT_EXPERIMENT
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        experiment_id = existing.experiment_id
    else:
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
