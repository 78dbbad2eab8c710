"""Leakage guard: attribute columns that look filled in after the lead was handed to sales.

A model that reads such a column (a sales tag, a lead-quality rating, the "last activity" of the
whole sales process) looks excellent in training and is useless when a new lead arrives, because
the column is empty then. Three tests, each naming the column and the `--exclude` to use:

1. **separates alone**: the column by itself reaches a single-feature ROC AUC above
   `SINGLE_AUC_LIMIT` (out-of-fold target encoding, so identifiers do not count);
2. **dominates**: it carries at least `DOMINANCE_SHARE` of the model's permutation importance and
   removing its information costs at least `DOMINANCE_AUC_DROP` of held-out ROC AUC;
3. **named like a sales field**: its name reads like something sales or a later system fills in
   (tags, quality, status, stage, owner, a score or index, the last activity) and it carries some
   signal (single-feature AUC at least `HINT_MIN_AUC`). Weaker evidence: checked by a person.

A warning is **strong** (`LeakageWarning.strong`) when the evidence leaves little doubt: the
column alone separates won and lost leads almost perfectly (single-feature ROC AUC at least
`STRONG_SINGLE_AUC`: no attribute known when a lead arrives does that), or it is named like a
sales field AND separates alone or dominates the model (a CRM `Stage` of Won/Lost, X Education's
`Tags`). The gate never promotes a model with a strong warning unless the user allows it
(`training.registry.gate`); the other warnings are for a person to check.

Warnings never change the training data; they are printed and recorded on the MLflow run.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

SINGLE_AUC_LIMIT = 0.95
STRONG_SINGLE_AUC = 0.99
DOMINANCE_SHARE = 0.5
DOMINANCE_AUC_DROP = 0.05
HINT_MIN_AUC = 0.53

# Words in a column name that suggest the value is set during or after the sales conversation.
_HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), why)
    for pattern, why in (
        (r"\btags?\b", "tags are usually set by sales while working the lead"),
        (r"\bquality\b", "a quality rating is usually given by the person who worked the lead"),
        (
            r"\b(status|stage|disposition|outcome|result)\b",
            "a status or stage records how the sale went",
        ),
        (
            r"\b(lost|won|closed|converted|deal|opportunity|revenue)\b",
            "it describes the sale itself",
        ),
        (r"\b(owner|assigned|rep)\b", "it is set when sales takes the lead"),
        (
            r"\b(score|index|rating|grade|profile)\b",
            "a score, index or profile assigned to the lead, "
            "often by sales or another system after hand-off",
        ),
        (
            r"\blast\b.*\b(activity|notable|contact|touch)\b",
            "the last activity is recorded up to the export, after the lead was handed over",
        ),
        (r"\b(notes?|comments?|call outcome)\b", "notes are written during the sales conversation"),
    )
)


@dataclass(frozen=True)
class LeakageWarning:
    """One suspected leak: the column, why, the numbers behind it and the fix."""

    column: str
    reason: str
    single_auc: float | None
    importance_share: float | None
    fix: str
    strong: bool = False  # blocks promotion (see the module docstring)

    def to_text(self) -> str:
        return f"suspected leakage in column '{self.column}': {self.reason}; {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _exclude_option(column: str) -> str:
    return f"--exclude {shlex.quote(column)}"


def _fix(column: str) -> str:
    return (
        f"if it is filled in after the lead is handed to sales, retrain with "
        f"{_exclude_option(column)}"
    )


def _encode(series: pd.Series, kind: str) -> np.ndarray:
    """Integer codes for target encoding: categories, or 20 quantile bins of a number."""
    if kind in ("numeric", "boolean"):
        values = pd.to_numeric(series, errors="coerce")
        if values.notna().sum() == 0:
            return np.zeros(len(series), dtype=np.int64)
        ranks = values.rank(method="average", pct=True)
        codes = np.floor(ranks.fillna(-0.05).to_numpy() * 20).astype(np.int64) + 1
        return np.clip(codes, 0, 21)
    text = series.astype("string").str.strip().str.lower()
    codes, _ = pd.factorize(text, use_na_sentinel=False)
    return codes.astype(np.int64)


def single_feature_auc(series: pd.Series, labels: Any, kind: str = "categorical", folds: int = 5,
                       seed: int = 0, groups: Any = None) -> float:  # fmt: skip
    """ROC AUC of one column alone: out-of-fold smoothed win rate of its value (or value bin).

    Out-of-fold, so a column unique per lead (an identifier) scores about 0.5, not 1. `groups`:
    each row's lead, when a lead has several rows (training snapshots): the folds are folds of
    leads, else a lead's other snapshots would give its own value its own label (a column
    unique per lead scored 1.0 on 4 snapshots per lead, a "leak" that blocked the gate).
    """
    y = np.asarray(labels, dtype=float)
    if y.size < 10 or not 0 < y.sum() < y.size:
        return float("nan")
    codes = _encode(series.reset_index(drop=True), kind)
    n_codes = int(codes.max()) + 1
    if groups is None:
        fold = np.random.default_rng(seed).permutation(y.size) % folds
    else:
        leads, uniques = pd.factorize(np.asarray(groups))  # a hash pass, no sort
        fold = (np.random.default_rng(seed).permutation(len(uniques)) % folds)[leads]
    prior, smoothing = y.mean(), 10.0
    encoded = np.empty(y.size)
    for k in range(folds):
        train, test = fold != k, fold == k
        count = np.bincount(codes[train], minlength=n_codes)
        wins = np.bincount(codes[train], weights=y[train], minlength=n_codes)
        rate = (wins + smoothing * prior) / (count + smoothing)
        encoded[test] = rate[codes[test]]
    return float(roc_auc_score(y, encoded))


def name_hint(column: str) -> str | None:
    """Why the column's name reads like a field filled in by sales, or None."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", column).lower()
    words = re.sub(r"[^a-z0-9]+", " ", spaced).strip()
    for pattern, why in _HINTS:
        if pattern.search(words):
            return why
    return None


def permutation_importance_by_column(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    labels: Any,
    groups: dict[str, list[int]],
    seed: int = 0,
    max_rows: int = 10_000,
) -> pd.DataFrame:
    """Drop in ROC AUC when all features of a group (one source column) are shuffled together.

    Returns DataFrame[column, auc_drop, share] sorted by drop; `share` is the drop over the sum
    of positive drops.
    """
    y = np.asarray(labels, dtype=float)
    rng = np.random.default_rng(seed)
    if X.shape[0] > max_rows:
        keep = rng.choice(X.shape[0], max_rows, replace=False)
        X, y = X[keep], y[keep]
    if not 0 < y.sum() < y.size:
        return pd.DataFrame({"column": list(groups), "auc_drop": np.nan, "share": np.nan})
    base = roc_auc_score(y, predict(X))
    drops = []
    order = rng.permutation(X.shape[0])
    for columns in groups.values():
        shuffled = X.copy()
        shuffled[:, columns] = X[order][:, columns]
        drops.append(base - roc_auc_score(y, predict(shuffled)))
    frame = pd.DataFrame({"column": list(groups), "auc_drop": drops})
    positive = frame["auc_drop"].clip(lower=0)
    total = positive.sum()
    frame["share"] = positive / total if total > 0 else 0.0
    return frame.sort_values("auc_drop", ascending=False, ignore_index=True)


def feature_groups(feature_names: list[str], attributes: list[str]) -> dict[str, list[int]]:
    """Feature indices per source: an attribute column (and its `column__part` features), or
    "touchpoints" for every touchpoint aggregate (they are point-in-time by construction)."""
    groups: dict[str, list[int]] = {}
    attribute_set = set(attributes) | {"created_at"}
    for i, name in enumerate(feature_names):
        source = name.split("__")[0] if name.split("__")[0] in attribute_set else "touchpoints"
        groups.setdefault(source, []).append(i)
    return groups


def single_feature_aucs(leads: pd.DataFrame, labels: Any, attribute_types: dict[str, str],
                        seed: int = 0, groups: Any = None) -> dict[str, float]:  # fmt: skip
    """Single-feature ROC AUC of every attribute column (`groups`: each row's lead, folds of
    leads; see `single_feature_auc`)."""
    if groups is not None:  # once for every column: the leads as codes
        groups = pd.factorize(np.asarray(groups))[0]
    return {
        column: single_feature_auc(leads[column], labels, kind, seed=seed, groups=groups)
        for column, kind in attribute_types.items()
        if column in leads.columns
    }


def check_leakage(
    single_aucs: dict[str, float],
    importance: pd.DataFrame | None = None,
) -> list[LeakageWarning]:
    """Warnings for attribute columns that look filled in after hand-off (see module docstring)."""
    shares = {} if importance is None else dict(zip(importance["column"], importance["share"]))
    drops = {} if importance is None else dict(zip(importance["column"], importance["auc_drop"]))
    warnings = []
    for column, auc in single_aucs.items():
        share = shares.get(column)
        drop = drops.get(column)
        reasons = []
        if auc is not None and auc > SINGLE_AUC_LIMIT:
            reasons.append(
                f"it alone separates won and lost leads (single-feature ROC AUC {auc:.3f})"
            )
        if _dominates(share, drop):
            reasons.append(
                f"it dominates the model ({share:.0%} of permutation importance; shuffling it "
                f"costs {drop:.3f} ROC AUC)"
            )
        hint = name_hint(column)
        if reasons and hint:
            reasons.append(f"its name suggests sales fills it in ({hint})")
        if not reasons and hint and auc is not None and auc >= HINT_MIN_AUC:
            reasons.append(
                f"its name suggests sales fills it in ({hint}; single-feature ROC AUC {auc:.3f})"
            )
        if reasons:
            warnings.append(
                LeakageWarning(
                    column=column,
                    reason=" and ".join(reasons),
                    single_auc=None if auc is None or np.isnan(auc) else round(float(auc), 4),
                    importance_share=None if share is None else round(float(share), 4),
                    fix=_fix(column),
                    strong=is_strong(column, auc, share, drop),
                )
            )
    strong = [w for w in warnings if w.strong]
    signal = [w for w in warnings if not w.strong and "name suggests" not in w.reason]
    named = [w for w in warnings if not w.strong and "name suggests" in w.reason]
    return strong + signal + named


def _dominates(share: float | None, drop: float | None) -> bool:
    return (
        share is not None
        and drop is not None
        and share >= DOMINANCE_SHARE
        and drop >= DOMINANCE_AUC_DROP
    )


def is_strong(
    column: str, auc: float | None, share: float | None = None, drop: float | None = None
) -> bool:
    """Whether the evidence of a leak is strong enough to keep the model from being promoted:
    near-perfect separation alone, or a sales-field name with separation or dominance."""
    if auc is not None and not np.isnan(auc) and auc >= STRONG_SINGLE_AUC:
        return True
    separates = auc is not None and not np.isnan(auc) and auc > SINGLE_AUC_LIMIT
    return name_hint(column) is not None and (separates or _dominates(share, drop))


def strong_columns(warnings: list[dict[str, Any]]) -> list[str]:
    """The columns of the strong warnings among logged ones (`leakage.json`'s `warnings`);
    warnings logged before `strong` existed are judged again from their numbers and reason."""
    columns = []
    for w in warnings:
        strong = w.get("strong")
        if strong is None:
            auc = w.get("single_auc")
            dominates = "dominates the model" in str(w.get("reason", ""))
            strong = is_strong(
                str(w["column"]),
                None if auc is None else float(auc),
                DOMINANCE_SHARE if dominates else None,
                DOMINANCE_AUC_DROP if dominates else None,
            )
        if strong:
            columns.append(str(w["column"]))
    return columns


def exclude_command(warnings: list[LeakageWarning]) -> str:
    """All `--exclude` options for the warned columns, ready to paste."""
    return " ".join(_exclude_option(w.column) for w in warnings)
