"""Training datasets from the loaded lead data: examples, the holdout split, fingerprints.

- **Timestamped mode** (leads with `created_at`, outcomes): one example per lead snapshot
  (`features.snapshots.build_snapshots`); the holdout is the most recent leads by `created_at`
  (all their snapshots), the model learns from the older ones.
- **Flat mode** (a label column, no timestamps): one example per lead; the holdout is a stratified
  random share of the leads.

`max_training_rows` caps the examples the model learns from (a seeded random sample of training
snapshots, documented on the run) so a million leads train in minutes; the holdout is capped at
`max_holdout_rows` the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from features.config import FeatureConfig
from features.data.loading import LeadData
from features.snapshots import attach_attributes, build_snapshots


class TrainingDataError(ValueError):
    """The data cannot train a model; the message says what is missing and how to fix it."""


@dataclass
class Examples:
    """Rows to featurize (lead_id, attributes, and created_at/as_of when timestamped) + labels."""

    frame: pd.DataFrame
    labels: np.ndarray
    timestamped: bool
    now: pd.Timestamp | None
    snapshot_report: dict[str, Any] | None

    @property
    def groups(self) -> np.ndarray:
        return self.frame["lead_id"].to_numpy()

    def keep(self, *parts: np.ndarray) -> tuple[Examples, list[np.ndarray]]:
        """These examples cut to the rows of `parts` (row indices, in order), and each part's
        rows in the cut examples. Training keeps only the rows it samples: at a million leads
        every snapshot with its lead's attributes held about 1 GB through the model search."""
        rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        kept = Examples(
            self.frame.iloc[rows].reset_index(drop=True),
            self.labels[rows],
            self.timestamped,
            self.now,
            self.snapshot_report,
        )
        ends = np.cumsum([0, *(len(p) for p in parts)])
        return kept, [np.arange(a, b) for a, b in zip(ends[:-1], ends[1:], strict=True)]


def data_now(data: LeadData) -> pd.Timestamp | None:
    """When the data was extracted: the latest timestamp in any table."""
    moments = []
    if "created_at" in data.leads.columns:
        moments.append(data.leads["created_at"].max())
    if data.touchpoints is not None and len(data.touchpoints):
        moments.append(data.touchpoints["occurred_at"].max())
    if data.outcomes is not None and len(data.outcomes):
        moments.append(data.outcomes["closed_at"].max())
    moments = [m for m in moments if m is not None and not pd.isna(m)]
    return max(moments) if moments else None


def build_examples(data: LeadData, feature_config: FeatureConfig, now: Any = None) -> Examples:
    """Labelled examples: snapshots when the leads have timestamps and outcomes, else flat rows."""
    if data.flat:
        labels = np.asarray(data.label, dtype=np.int64)
        frame = data.leads.reset_index(drop=True)
        _check_both_classes(labels, "the label column")
        return Examples(frame, labels, False, None, None)
    if "created_at" not in data.leads.columns:
        raise TrainingDataError(
            "the leads have no created_at column and no label column: give --created-at COL "
            "(with --outcomes PATH) for timestamped training, or --label COL for a flat file"
        )
    if data.outcomes is None:
        raise TrainingDataError(
            "timestamped leads need outcomes to learn from: give --outcomes PATH (lead_id, "
            "closed_at, won), or --label COL if the leads file has the outcome in a column"
        )
    now_ts = pd.Timestamp(now) if now is not None else data_now(data)
    if now_ts is not None and now_ts.tzinfo is None:
        now_ts = now_ts.tz_localize("UTC")
    snapshots, report = build_snapshots(data.leads, data.outcomes, feature_config, now_ts)
    if len(snapshots) == 0:
        raise TrainingDataError(
            f"no lead has a known outcome yet at any snapshot age ({report.to_text()}); "
            "add older leads or outcomes, or shorten horizon_days in the config"
        )
    frame = attach_attributes(snapshots, data.leads, data.attribute_history)
    snapshot_report = report.model_dump()
    if data.attribute_history is not None:  # point in time: before its arrival a lead is unknown
        snapshot_report["skipped_before_received"] = len(snapshots) - len(frame)
        if len(frame) == 0:
            raise TrainingDataError(
                f"every snapshot is older than the first time the service heard of its lead "
                f"({len(snapshots)} snapshots): the database holds no lead seen at a snapshot "
                "age yet; train from the CRM's files for the history before the capture started"
            )
    labels = frame.pop("label").to_numpy(dtype=np.int64)
    _check_both_classes(labels, "the snapshots")
    return Examples(frame, labels, True, now_ts, snapshot_report)


def _check_both_classes(labels: np.ndarray, what: str) -> None:
    wins = int(labels.sum())
    if wins == 0 or wins == labels.size:
        kind = "no win" if wins == 0 else "only wins"
        raise TrainingDataError(
            f"{what} have {kind} among {labels.size} examples: a model needs both won and lost "
            "leads; check --label/--positive or the outcomes file"
        )
    if min(wins, labels.size - wins) < 10:
        raise TrainingDataError(
            f"{what} have only {min(wins, labels.size - wins)} examples of the rarer class: "
            "at least 10 won and 10 lost leads are needed to train and evaluate"
        )


@dataclass
class Split:
    train: np.ndarray  # row indices into Examples.frame
    holdout: np.ndarray
    kind: str  # "time" | "stratified"
    description: str
    holdout_weeks: float | None


def split_holdout(
    examples: Examples, fraction: float, seed: int, settle_days: float | None = None
) -> Split:
    """Time-based holdout (most recent settled leads) when timestamped, else stratified random.

    `settle_days` (largest snapshot age + horizon): leads younger than that at `now` are left out.
    """
    n = len(examples.labels)
    if examples.timestamped:
        frame = examples.frame
        created = (
            frame.groupby("lead_id", sort=False)["created_at"].first().sort_values(kind="stable")
        )
        # Only leads whose every snapshot is past its horizon have unbiased labels: for newer ones
        # the still-open leads are censored while the quick wins are kept.
        settled = created
        if examples.now is not None and settle_days is not None:
            settled = created[created <= examples.now - pd.Timedelta(days=settle_days)]
            if len(settled) < 0.5 * len(created):
                settled = created  # too little settled data: evaluate on what there is
        n_holdout = max(1, int(round(fraction * len(settled))))
        recent = settled.index[-n_holdout:]
        cutoff, last = settled.iloc[-n_holdout], settled.iloc[-1]
        in_holdout = frame["lead_id"].isin(set(recent)).to_numpy()
        in_train = (frame["created_at"] < cutoff).to_numpy() & ~in_holdout
        holdout, train = np.flatnonzero(in_holdout), np.flatnonzero(in_train)
        newer = int((frame["created_at"] > last).sum())
        weeks = max((last - cutoff) / pd.Timedelta(days=7), 1 / 7)
        description = (
            f"time-based: {len(train)} examples of leads created before {cutoff:%Y-%m-%d} train, "
            f"{len(holdout)} examples of the {n_holdout} most recent settled leads "
            f"({cutoff:%Y-%m-%d} to {last:%Y-%m-%d}) are held out"
        )
        if newer:
            description += (
                f"; {newer} examples of leads created after {last:%Y-%m-%d} are left out (their "
                "outcome horizon is not over, so their labels are biased)"
            )
        kind = "time"
    else:
        train, holdout = train_test_split(
            np.arange(n), test_size=fraction, stratify=examples.labels, random_state=seed
        )
        train, holdout = np.sort(train), np.sort(holdout)
        weeks = None
        description = (
            f"stratified random (no timestamps): {len(train)} leads train, {len(holdout)} held out"
        )
        kind = "stratified"
    y_train, y_hold = examples.labels[train], examples.labels[holdout]
    for part, y in (("training", y_train), ("holdout", y_hold)):
        if y.sum() == 0 or y.sum() == y.size:
            raise TrainingDataError(
                f"the {part} part has {'no win' if y.sum() == 0 else 'only wins'} ({description}); "
                "add more leads with known outcomes"
            )
    return Split(train, holdout, kind, description, weeks)


def subsample(indices: np.ndarray, labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """At most `limit` of `indices`, a seeded stratified random sample (sorted)."""
    if limit is None or len(indices) <= limit:
        return indices
    keep, _ = train_test_split(
        indices, train_size=limit, stratify=labels[indices], random_state=seed
    )
    return np.sort(keep)


def drawn_leads_mask(
    groups: np.ndarray, share: float, rng: np.random.Generator, least: int = 1
) -> np.ndarray:
    """Which rows belong to a random `share` of the leads (at least `least` leads), the leads
    drawn from the sorted distinct ids as `rng.choice(np.unique(groups), ...)` would. Factorised:
    `np.isin` on text ids compares object by object, rows x chosen leads (at a million demo
    leads, 300,000 rows against 40,000 chosen leads ran for many minutes)."""
    codes, leads = pd.factorize(groups, sort=True)
    chosen = np.zeros(len(leads), dtype=bool)
    chosen[rng.choice(len(leads), max(least, int(len(leads) * share)), replace=False)] = True
    return chosen[codes]


def sample_leads_rows(groups: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Every row when there are at most `max_rows`; else every row of a random share of the
    leads (about `max_rows` rows, `drawn_leads_mask`)."""
    if len(groups) <= max_rows:
        return np.arange(len(groups))
    rng = np.random.default_rng(seed)
    return np.flatnonzero(drawn_leads_mask(groups, max_rows / len(groups), rng, least=2))


def _frame_hash(frame: pd.DataFrame | None) -> str | None:
    if frame is None:
        return None
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def fingerprints(data: LeadData) -> dict[str, Any]:
    """Rows, date range and a content hash of each table (to tell later whether data changed)."""
    out: dict[str, Any] = {}
    for name, frame, column in (
        ("leads", data.leads, "created_at"),
        ("touchpoints", data.touchpoints, "occurred_at"),
        ("outcomes", data.outcomes, "closed_at"),
    ):
        if frame is None:
            continue
        entry: dict[str, Any] = {"rows": int(len(frame)), "columns": [str(c) for c in frame.columns],
                                 "sha256_16": _frame_hash(frame)}  # fmt: skip
        if column in frame.columns and len(frame):
            entry["first"] = str(frame[column].min())
            entry["last"] = str(frame[column].max())
        out[name] = entry
    if data.label is not None:
        out["label"] = {"rows": int(len(data.label)), "wins": int(np.asarray(data.label).sum()),
                        "sha256_16": _frame_hash(data.label.to_frame())}  # fmt: skip
    return out
