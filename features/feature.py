"""One feature, declared once: its name, unit, description and how a value reads to sales.

The declarations sit beside the code that computes them: `features.touchpoints` declares every
touchpoint aggregate next to the numpy core, `features.attributes` the features each attribute
column yields next to its encoder. The featurizer's names, categorical mask, feature table and
`describe()` all come from these objects; nothing else lists the features.

Several columns can be views of one *fact* about a lead: the 7-day, 30-day, 90-day and all-time
counts of its demo requests, or a job title and the seniority and department read from it. They
declare the same `Fact`, and a lead's reasons name each fact once (`LeadFeaturizer.facts_`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# What a feature column is to a model (`Feature.kind`, `LeadFeaturizer.column_kinds_`): an amount,
# a category's integer code, or a calendar part (weekday, hour, month, months after the lead's
# creation) that trees split as a number and a linear model reads as a category, one effect per
# value (a weekend or a renewal window is neither smooth nor monotone in the number).
# DETAIL: a number that is a finer view of a fact the other columns already give (a count per
# channel, over a window other than the compact one): models read it as a NUMBER, and the search's
# compact candidates leave it out (`training.models`: on few wins, fewer columns learn better).
# WIDE: a category's code over a larger vocabulary than its one-hot column keeps (every value seen
# a few times in fit; `FeatureConfig.wide_min_count`), declared right after that column (its
# *capped* twin, a CATEGORY). Only target-encoding candidates read it, in place of the twin;
# every other model ignores it (`training.models`: it is constant in their fits).
NUMBER, CATEGORY, CALENDAR, DETAIL, WIDE = 0, 1, 2, 3, 4


@dataclass(frozen=True, eq=False, kw_only=True)
class Fact:
    """One thing about a lead that several feature columns measure.

    `describe(values)` says it once in plain words from the values of its features, in column
    order (NaN = missing), e.g. '1 demo request in the last 7 days'. Facts are compared by
    identity: two declarations with the same name are two facts.
    """

    name: str
    describe: Callable[[Sequence[float]], str]


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One output column of the featurizer.

    `describe(value)` says one value in plain words for sales, e.g. '3 pricing-page visits in the
    last 7 days' (NaN = missing). `categorical`: the value is an integer code, not an amount.
    `calendar`: a calendar part (see `CALENDAR`); a number to trees, to the search's calendar
    candidate target-encoded (`training.models`: `calendar=target`).
    `detail`: a finer view of a fact that other columns give more coarsely (see `DETAIL`).
    `wide`: a category's code over the larger vocabulary a target encoder reads (see `WIDE`).
    `fact`: the fact this column is one view of (None: the column is a fact of its own).
    `blank_when_missing`: NaN means the CRM left the field empty ("not given"), rather than
    "none yet" (no touchpoint, no high-intent action), which is a fact about the lead.
    """

    name: str
    unit: str
    description: str
    describe: Callable[[float], str]
    categorical: bool = False
    calendar: bool = False
    detail: bool = False
    wide: bool = False
    fact: Fact | None = None
    blank_when_missing: bool = False

    @property
    def kind(self) -> int:
        """NUMBER, CATEGORY, CALENDAR, DETAIL or WIDE."""
        if self.wide:
            return WIDE
        if self.categorical:
            return CATEGORY
        return CALENDAR if self.calendar else DETAIL if self.detail else NUMBER


@dataclass(frozen=True)
class FactColumns:
    """A fact placed in a feature table: its name, its columns, how it reads, and whether all its
    columns missing means a blank (nothing said about the lead) rather than an informative none."""

    name: str
    columns: tuple[int, ...]
    describe: Callable[[Sequence[float]], str]
    blank_when_missing: bool


def facts_of(features: Sequence[Feature]) -> tuple[FactColumns, ...]:
    """The facts of a feature table, in the order of their first column; a feature without a
    declared fact is a fact of its own, named and worded as the feature."""
    groups: dict[int, list[int]] = {}
    declared: dict[int, Fact] = {}
    for column, feature in enumerate(features):
        key = id(feature.fact) if feature.fact is not None else -1 - column
        groups.setdefault(key, []).append(column)
        if feature.fact is not None:
            declared[key] = feature.fact
    out = []
    for key, columns in groups.items():
        blank = all(features[c].blank_when_missing for c in columns)
        fact = declared.get(key)
        if fact is None:
            only = features[columns[0]]
            out.append(FactColumns(only.name, (columns[0],), _one_value(only.describe), blank))
        else:
            out.append(FactColumns(fact.name, tuple(columns), fact.describe, blank))
    return tuple(out)


def _one_value(describe: Callable[[float], str]) -> Callable[[Sequence[float]], str]:
    return lambda values: describe(values[0])


def is_missing(value: float | None) -> bool:
    """Whether a value to describe is missing (None or NaN)."""
    return value is None or math.isnan(value)
