"""Settings: every one is a field of `Settings`, and `leadscore serve` hands them all to its
worker processes through the environment (the only channel uvicorn's workers have)."""

from __future__ import annotations

import os

import pytest

from serving.config import Settings, export_for_workers, settings_environment

OUTSIDE_PREFIX = ("MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR")


@pytest.fixture
def clean_environment(monkeypatch):
    """No LEADSCORE_* (or aliased) variable from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("LEADSCORE_") or name in OUTSIDE_PREFIX:
            monkeypatch.delenv(name)
    return monkeypatch


def decided_by_the_cli() -> Settings:
    return Settings(
        model_uri="models:/lead-scoring/3",
        mlflow_tracking_uri="http://mlflow:5000",
        database_url="postgresql+psycopg://leadscore@db/leadscore?options=-csearch_path%3Dls",
        api_keys_bootstrap="",
        auto_migrate=False,
        workers=4,
        compile_model=False,
        score_log_flush_seconds=0.05,
        model_poll_seconds=30.0,
        policy_refresh_seconds=0.25,
        prometheus_multiproc_dir="/tmp/leadscore-metrics-x",
    )


def test_every_setting_comes_back_the_same_from_the_environment(clean_environment):
    decided = decided_by_the_cli()
    environment = settings_environment(decided)
    for name, value in environment.items():
        clean_environment.setenv(name, value)
    assert Settings() == decided
    assert environment["LEADSCORE_AUTO_MIGRATE"] == "false"
    assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert environment["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/leadscore-metrics-x"
    assert environment["LEADSCORE_POLICY_REFRESH_SECONDS"] == "0.25"
    # one variable per field, nothing else
    assert len(environment) == len(Settings.model_fields)


def test_an_unset_metrics_directory_is_left_unset(clean_environment):
    environment = settings_environment(Settings())
    assert "PROMETHEUS_MULTIPROC_DIR" not in environment
    assert len(environment) == len(Settings.model_fields) - 1


def test_export_for_workers_writes_them_and_keeps_a_given_omp_setting(monkeypatch):
    environment = {"OMP_NUM_THREADS": "3", "LEADSCORE_WORKERS": "1"}
    monkeypatch.setattr(os, "environ", environment)  # this process's real one stays untouched
    export_for_workers(decided_by_the_cli())
    assert environment["LEADSCORE_WORKERS"] == "4"
    assert environment["LEADSCORE_AUTO_MIGRATE"] == "false"
    assert environment["OMP_NUM_THREADS"] == "3"
    del environment["OMP_NUM_THREADS"]
    export_for_workers(decided_by_the_cli().model_copy(update={"model_threads": 2}))
    assert environment["OMP_NUM_THREADS"] == "2"
