"""Shared fixtures: small demo data and a real MLflow SQLite store in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import missing_service

XEDUCATION = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "xeducation_leads.csv"


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """3,000 demo leads (Parquet) with their oracle."""
    from features.data import demo

    out = tmp_path_factory.mktemp("demo")
    demo.write(demo.generate(3000, seed=7), out, formats=("parquet",))
    return out


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> str:
    """MLflow's real SQLite tracking store and registry in a fresh temporary directory."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture
def xeducation() -> Path:
    if not XEDUCATION.is_file():
        missing_service(f"{XEDUCATION} is absent: the X Education tests need ../shared/data/")
    return XEDUCATION


def demo_config(demo_dir: Path, touchpoints: bool = True, exclude=None, search: str = "tiny"):
    from training.train import resolve_config

    config = resolve_config(
        None,
        leads=demo_dir / "leads.parquet",
        touchpoints=demo_dir / "touchpoints.parquet" if touchpoints else None,
        outcomes=demo_dir / "outcomes.parquet",
        exclude=exclude,
    )
    config.training.search = search
    config.training.cv_folds = 2
    return config
