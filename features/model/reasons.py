"""A lead's reasons in plain words: one per fact about the lead, strongest first.

Effects come per feature column (occlusion against the typical lead: `LeadScorer._effects`).
A sales rep reads *facts*, so `ReasonWriter` adds the effects of the columns that say the same
thing (the 7/30/90-day and all-time counts of demo requests; a job title and the seniority and
department read from it; see `features.feature.Fact`) into one effect per fact, and words each
fact once from all its values. A fact is therefore never a reason for and against at once.
A blank (a CRM field left empty: "Job title: not given") is a reason only when its effect is
large (`MISSING_EFFECT_POINTS`): a small effect of an empty field tells a rep nothing to act on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from features.feature import CALENDAR, CATEGORY, WIDE, FactColumns

N_REASONS = 3


MIN_EFFECT_POINTS = 0.5  # effects smaller than half a score point are noise, not reasons


# An empty field is a reason only from this many score points on. Measured on the demo model
# (notes-reasons.md): blanks' effects are mostly under 2 points, the shown reasons' median ~2.5;
# 3 points is about what the typical strongest reason of a lead is worth, so a blank shown is
# among the things that matter most for that lead.
MISSING_EFFECT_POINTS = 3.0


def _baseline_equal(X: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    both_nan = np.isnan(X) & np.isnan(baseline)
    return (X == baseline) | both_nan


def strongest_effects(
    effects: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(top columns, their effects, bottom columns, their effects), `n` per lead (row).

    Top: largest effects first, ties to the earlier column; bottom: smallest first, ties to the
    later column; NaN (no effect) is never picked: a lead with fewer effects gets NaN there.
    The same picks as a stable argsort of each row (`ranked_effects`), by n passes of argmax.
    """
    n_leads, width = effects.shape
    missing = np.isnan(effects)
    # the rows for the top, then for the bottom: smallest, ties to the later column, is the
    # argmax of the negated, reversed row; both in the same n passes
    key = np.concatenate(
        [np.where(missing, -np.inf, effects), np.where(missing, -np.inf, -effects)[:, ::-1]]
    )
    rows = np.arange(key.shape[0])
    columns = np.empty((key.shape[0], n), dtype=np.intp)
    picked = np.empty((key.shape[0], n))
    for k in range(n):
        j = key.argmax(axis=1)
        picked[:, k] = key[rows, j]
        key[rows, j] = -np.inf
        columns[:, k] = j
    values = np.where(np.isneginf(picked), np.nan, picked)  # -inf: only NaN effects were left
    return columns[:n_leads], values[:n_leads], width - 1 - columns[n_leads:], -values[n_leads:]


def ranked_effects(
    effects: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`strongest_effects` by a stable argsort of every row (the tests' reference)."""
    n_features = effects.shape[1]
    order = np.argsort(np.where(np.isnan(effects), np.inf, -effects), axis=1, kind="stable")
    top = order[:, :n]
    counts = (~np.isnan(effects)).sum(axis=1)
    back = counts[:, None] - 1 - np.arange(n)[None, :]
    bottom = np.take_along_axis(order, np.clip(back, 0, n_features - 1), axis=1)
    top_effect = np.take_along_axis(effects, top, axis=1)
    bottom_effect = np.where(back >= 0, np.take_along_axis(effects, bottom, axis=1), np.nan)
    return top, top_effect, bottom, bottom_effect


def format_reasons(reasons: Sequence[Mapping[str, Any]] | None) -> str:
    """Reasons as one line for files and terminals: 'text (+8.0); text (-3.1)'."""
    if not reasons:
        return ""
    return "; ".join(f"{r['text']} ({r['effect']:+.1f})" for r in reasons)


def typical_lead(X: np.ndarray, column_kinds: np.ndarray) -> np.ndarray:
    """The baseline for reasons: per feature the most common value of a category (a wide code
    too) or a calendar part, the median of a number.

    `column_kinds`: NUMBER / CATEGORY / CALENDAR / DETAIL per column (`column_kinds_`), or
    a bool mask of the categories. A calendar part's median can be no value at all (2.5 between
    two weekdays), which a model reading each weekday as a category would weigh every lead's
    weekday against in full. A feature missing for most leads has a missing baseline (missing
    is the typical value).
    """
    commonest = np.isin(np.asarray(column_kinds).astype(np.int8), (CATEGORY, CALENDAR, WIDE))
    X = np.asarray(X, dtype=float)
    baseline = np.full(X.shape[1], np.nan)
    for j in range(X.shape[1]):
        column = X[:, j]
        present = column[~np.isnan(column)]
        if present.size * 2 < column.size or present.size == 0:
            continue
        if commonest[j]:
            values, counts = np.unique(present, return_counts=True)
            baseline[j] = values[int(np.argmax(counts))]
        else:
            baseline[j] = float(np.median(present))
    return baseline


class ReasonWriter:
    """The reasons of many leads at once: per lead, up to n facts for and n against.

    Built once per featurizer (`facts`: its `facts_`); `write(X, effects, n)` takes the feature
    rows and the per-column effects (NaN where the lead has the typical value) and returns
    (reasons for, reasons against) per lead, each reason ``{"feature", "text", "effect"}`` where
    `feature` is the fact's name (the column's name for a fact of one column) and `effect` the
    sum of its columns' effects in score points. Everything but the words is array work; words
    are cached per fact and values (1,000 leads x 6 reasons share few distinct texts).
    """

    def __init__(self, facts: Sequence[FactColumns], n_features: int) -> None:
        self.facts = tuple(facts)
        self.names = [f.name for f in self.facts]
        n_facts = len(self.facts)
        self.membership = np.zeros((n_features, n_facts))
        for g, fact in enumerate(self.facts):
            self.membership[list(fact.columns), g] = 1.0
        self.sizes = self.membership.sum(axis=0)
        self.blank = np.array([f.blank_when_missing for f in self.facts], dtype=bool)
        # only the columns of facts that can be blanks are checked for missing values
        self.blank_facts = np.flatnonzero(self.blank)
        self.blank_columns = np.flatnonzero(self.membership[:, self.blank_facts].any(axis=1))
        self.blank_membership = self.membership[np.ix_(self.blank_columns, self.blank_facts)]
        # every fact of one column, one per column: the effects are the facts' already
        self.identity = n_facts == n_features and all(len(f.columns) == 1 for f in self.facts)
        widest = max((len(f.columns) for f in self.facts), default=1)
        self.padded = np.array(
            [[*f.columns, *[f.columns[-1]] * (widest - len(f.columns))] for f in self.facts],
            dtype=np.intp,
        ).reshape(n_facts, widest)
        self._texts: list[dict[Any, str]] = [{} for _ in self.facts]

    def fact_effects(self, X: np.ndarray, effects: np.ndarray) -> np.ndarray:
        """(leads, facts): the summed effect of each fact's columns; 0 where none of them
        differs from the typical lead (NaN effects), or where the fact is a blank with a small
        effect. Below `MIN_EFFECT_POINTS`, 0 is no reason, as NaN is not."""
        out = np.nan_to_num(effects, nan=0.0)
        if not self.identity:
            out = out @ self.membership
        if self.blank_facts.size:
            missing = np.isnan(X[:, self.blank_columns]) @ self.blank_membership
            blank = out[:, self.blank_facts]
            quiet = (missing == self.sizes[self.blank_facts]) & (
                np.abs(blank) < MISSING_EFFECT_POINTS
            )
            blank[quiet] = 0.0
            out[:, self.blank_facts] = blank
        return out

    def write(
        self, X: np.ndarray, effects: np.ndarray, n_reasons: int
    ) -> tuple[list[list[dict]], list[list[dict]]]:
        n_leads = X.shape[0]
        if not self.facts or n_reasons <= 0:
            return [[] for _ in range(n_leads)], [[] for _ in range(n_leads)]
        by_fact = self.fact_effects(X, effects)
        n = min(n_reasons, len(self.facts))
        top, top_effect, bottom, bottom_effect = strongest_effects(by_fact, n)
        return (
            self._reasons(X, top, top_effect, top_effect >= MIN_EFFECT_POINTS),
            self._reasons(X, bottom, bottom_effect, bottom_effect <= -MIN_EFFECT_POINTS),
        )

    def _reasons(
        self, X: np.ndarray, picked: np.ndarray, effects: np.ndarray, keep: np.ndarray
    ) -> list[list[dict]]:
        """Per lead, the reasons at `picked` facts where `keep` (one flat pass over all of them)."""
        lead, rank = np.nonzero(keep)  # row-major: each lead's reasons in rank order
        facts = picked[lead, rank]
        texts = self._words(X, lead, facts)
        names = self.names
        reasons = [
            {"feature": name, "text": text, "effect": effect}
            for name, text, effect in zip(
                map(names.__getitem__, facts.tolist()), texts,
                map(round, effects[lead, rank].tolist(), repeat(1, len(texts))),
            )
        ]  # fmt: skip
        ends = np.cumsum(keep.sum(axis=1)).tolist()
        return [reasons[start:end] for start, end in zip([0, *ends[:-1]], ends)]

    def _words(self, X: np.ndarray, lead: np.ndarray, facts: np.ndarray) -> list[str]:
        if sum(map(len, self._texts)) > 100_000:
            self._texts = [{} for _ in self.facts]
        cache = self._texts
        # every reason's values at once, its fact's columns padded to the widest fact's (by
        # repeating its last column): the bytes of a fact's row are the key of its words
        block = X[lead[:, None], self.padded[facts]]
        raw = block.tobytes()
        width = block.shape[1] * 8
        texts: list[str] = []
        for k, g in enumerate(facts.tolist()):
            key = raw[k * width : (k + 1) * width]
            text = cache[g].get(key)
            if text is None:
                fact = self.facts[g]
                text = cache[g][key] = fact.describe(block[k, : len(fact.columns)].tolist())
            texts.append(text)
        return texts
