"""Shared test helpers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

# OpenMP threads waiting for work sleep instead of spinning (as `leadscore` sets it): on a shared
# machine spinning threads made gradient boosting fits, and so the training fixtures, many times
# slower. Set before scikit-learn's OpenMP runtime loads; a value already set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402


def missing_service(message: str) -> None:
    """Skip a test whose real service (PostgreSQL, Chromium, the shared data) is absent.

    In CI (CI=true) the same absence fails the test instead: CI must run every test, so a
    missing install step shows up as red, not as a quiet skip.
    """
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must not skip: {message}", pytrace=False)
    pytest.skip(message)


# Fixtures that train a real model (MLflow registry included), run a notebook or start servers:
# every test that uses one is slow, so `make test-fast` (-m "not slow") leaves it out without each
# test having to say so. Tests can also be marked by hand with @pytest.mark.slow.
SLOW_FIXTURES = frozenset(
    {
        "trained_model",
        "scoring_app",
        "trained",
        "tracking",
        "logistic_scorer",
        "fuzzed_app",
        "spark",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = pytest.mark.slow
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(slow)


SPARK_HINT = (
    "Spark's local mode needs PySpark and Java 17: `make install` (pyspark comes with "
    "requirements.lock) and `make java` (Debian's openjdk-17-jre-headless)"
)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark (2 cores, 2 shuffle partitions, no UI) for every Spark test."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing_service(f"PySpark is not installed: {SPARK_HINT}")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        missing_service(f"no java on the PATH: {SPARK_HINT}")
    from features.spark import SparkUnavailable, spark_session

    try:
        session = spark_session("local[2]", app_name="leadscore-tests", shuffle_partitions=2)
    except SparkUnavailable as exc:
        missing_service(str(exc))
    try:
        yield session
    finally:
        session.stop()
