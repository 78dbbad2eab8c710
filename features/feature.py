"""One feature, declared once: its name, unit, description and how a value reads to sales.

The declarations sit beside the code that computes them: `features.touchpoints` declares every
touchpoint aggregate next to the numpy core, `features.attributes` the features each attribute
column yields next to its encoder. The featurizer's names, categorical mask, feature table and
`describe()` all come from these objects; nothing else lists the features.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One output column of the featurizer.

    `describe(value)` says one value in plain words for sales, e.g. '3 pricing-page visits in the
    last 7 days' (NaN = missing). `categorical`: the value is an integer code, not an amount.
    """

    name: str
    unit: str
    description: str
    describe: Callable[[float], str]
    categorical: bool = False


def is_missing(value: float | None) -> bool:
    """Whether a value to describe is missing (None or NaN)."""
    return value is None or math.isnan(value)
