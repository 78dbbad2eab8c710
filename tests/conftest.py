"""Shared test helpers."""

from __future__ import annotations

import os

import pytest


def missing_service(message: str) -> None:
    """Skip a test whose real service (PostgreSQL, Chromium, the shared data) is absent.

    In CI (CI=true) the same absence fails the test instead: CI must run every test, so a
    missing install step shows up as red, not as a quiet skip.
    """
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must not skip: {message}", pytrace=False)
    pytest.skip(message)
