"""leadscore against the oracle and two plain baselines on every demo data shape (issue 17).

For each shape (`leadscore demo-data --shape`): demo leads (seed 0) train leadscore through
`training.train.train`, as `bench/demo_quality.py` does; two baselines learn from the SAME examples
and feature matrix the served model learned from (`training.train.fitting_rows`, the served
model's featurizer; training + holdout when the served model was refitted on both):

- `HistGradientBoostingClassifier()` with default settings, native categorical splits;
- a one-hot logistic regression: `OneHotEncoder(handle_unknown='ignore')` for the categories,
  median-imputed, standardised numbers, `LogisticRegression()`.

Fresh leads of the shape (another seed) are scored by the served model and the baselines at their
30-day snapshots (where the oracle's information is complete); the table gives each ROC AUC beside
the oracle's, leadscore's calibration error, then the acceptance verdicts: leadscore is never below
either baseline, and within 0.01 of the oracle on every shape with >= 20,000 leads.

    .venv/bin/python bench/shapes.py [--shapes default small] [--leads N] [--fresh-leads 20000]

`--leads` default: each shape's own (20,000; small: 3,000). Win rate: of the fresh leads' 30-day
snapshots.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.demo_quality import (  # noqa: E402  (after the path is set)
    SEED,
    at_age,
    demo_examples,
    demo_oracle,
    fresh_scores,
    train_on_demo,
    write_demo,
)

GAP_TARGET = 0.01  # ROC AUC below the oracle's, on shapes of at least GAP_MIN_LEADS leads
GAP_MIN_LEADS = 20_000


@dataclass
class ShapeRun:
    """One shape's figures on the fresh leads' 30-day snapshots."""

    shape: str
    leads: int
    snapshots: int
    win_rate: float
    oracle_auc: float
    leadscore_auc: float
    hgb_auc: float
    logistic_auc: float
    leadscore_ece: float
    train_seconds: float
    model: str
    notes: list[str]

    @property
    def gap(self) -> float:
        return self.oracle_auc - self.leadscore_auc

    def verdicts(self) -> list[tuple[str, bool | None]]:
        """(what, held) for each acceptance line; held None: the line does not apply."""
        return [
            (
                f"leadscore >= HGB ({self.leadscore_auc - self.hgb_auc:+.4f})",
                self.leadscore_auc >= self.hgb_auc,
            ),
            (
                f"leadscore >= one-hot logistic ({self.leadscore_auc - self.logistic_auc:+.4f})",
                self.leadscore_auc >= self.logistic_auc,
            ),
            (
                f"gap to the oracle <= {GAP_TARGET} ({self.gap:.4f})",
                self.gap <= GAP_TARGET if self.leads >= GAP_MIN_LEADS else None,
            ),
        ]


def baselines(mask: Any) -> dict[str, Any]:
    """The two baselines, unfitted, for a feature matrix whose categorical columns are `mask`."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categories, numbers = np.flatnonzero(mask), np.flatnonzero(~mask)
    parts = [("categories", OneHotEncoder(handle_unknown="ignore"), categories)]
    numeric = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
    )
    parts.append(("numbers", numeric, numbers))
    return {
        "hgb": HistGradientBoostingClassifier(
            categorical_features=mask if mask.any() else None, random_state=0
        ),
        "logistic": Pipeline(
            [
                ("features", ColumnTransformer(parts, sparse_threshold=0.0)),
                ("model", LogisticRegression(max_iter=2000)),
            ]
        ),
    }


def baseline_probabilities(result: Any, config: Any, fresh_config: Any) -> dict[str, Any]:
    """Each baseline fitted on the served model's examples and feature matrix; its probability
    for every settled snapshot of the fresh leads, in `fresh_scores`' order."""
    import numpy as np

    from features.model.artifact import load_model_scorer
    from training.models import fill_empty_columns
    from training.train import fitting_rows

    featurizer = load_model_scorer(result.model_uri).featurizer
    data, examples = demo_examples(config)
    _, train_rows, holdout_rows = fitting_rows(examples, config, SEED)
    rows = np.concatenate([train_rows, holdout_rows]) if result.refit else train_rows
    X, empty = fill_empty_columns(featurizer.transform(examples.frame.iloc[rows], data.touchpoints))
    y = examples.labels[rows]
    fresh_data, fresh = demo_examples(fresh_config, fresh_config.features.snapshot_ages_days)
    X_fresh = featurizer.transform(fresh.frame, fresh_data.touchpoints)
    X_fresh[:, empty] = 0.0  # as in training: a column with no value there teaches nothing
    mask = np.asarray(featurizer.categorical_mask_, dtype=bool)
    return {
        name: model.fit(X, y).predict_proba(X_fresh)[:, 1]
        for name, model in baselines(mask).items()
    }


def run_shape(shape: str, leads: int, fresh_leads: int, seed: int, tmp: Path) -> ShapeRun:
    from sklearn.metrics import roc_auc_score

    from features.data import demo
    from training.evaluate import expected_calibration_error

    config = write_demo(demo.generate(leads, seed=seed, shape=shape), tmp / shape / "demo")
    result, seconds = train_on_demo(config)
    fresh_dir = tmp / shape / "fresh"
    fresh_config = write_demo(demo.generate(fresh_leads, seed=seed + 1000, shape=shape), fresh_dir)
    scored = fresh_scores(result, fresh_config)
    for name, probability in baseline_probabilities(result, config, fresh_config).items():
        scored[name] = probability
    settled = at_age(scored, demo_oracle(fresh_dir))
    y = settled["label"].to_numpy()
    skipped = [w for w in result.warnings if "time budget" in w]
    return ShapeRun(
        shape=shape,
        leads=leads,
        snapshots=len(settled),
        win_rate=float(y.mean()),
        oracle_auc=roc_auc_score(y, settled["true_win_probability"]),
        leadscore_auc=roc_auc_score(y, settled["probability"]),
        hgb_auc=roc_auc_score(y, settled["hgb"]),
        logistic_auc=roc_auc_score(y, settled["logistic"]),
        leadscore_ece=expected_calibration_error(y, settled["probability"]),
        train_seconds=seconds,
        model=result.selected,
        notes=skipped,
    )


def main() -> None:
    from features.data.demo.process import SHAPES

    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--leads", type=int, default=None, help="default: each shape's own")
    parser.add_argument("--fresh-leads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0, help="fresh leads: seed + 1000")
    args = parser.parse_args()

    from bench.machine import describe_machine

    machine = describe_machine()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.chdir(tmp)
        for shape in args.shapes:
            leads = args.leads or SHAPES[shape].leads
            runs.append(run_shape(shape, leads, args.fresh_leads, args.seed, Path(tmp)))
            print(f"done: {shape} ({runs[-1].train_seconds:.0f} s)", file=sys.stderr, flush=True)
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {machine}; at the end: {load_end}")
    print(
        f"fresh leads: {args.fresh_leads:,} per shape (seed {args.seed + 1000}), scored at their "
        "30-day snapshots; leadscore by the served model"
    )
    print()
    print(
        "| shape | leads | 30-day snapshots | win rate | oracle ROC AUC | leadscore ROC AUC (gap) "
        "| HGB ROC AUC | one-hot logistic ROC AUC | leadscore ECE | train s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r.shape} | {r.leads:,} | {r.snapshots:,} | {r.win_rate:.1%} | {r.oracle_auc:.4f} "
            f"| {r.leadscore_auc:.4f} ({r.gap:+.4f}) | {r.hgb_auc:.4f} | {r.logistic_auc:.4f} "
            f"| {r.leadscore_ece:.4f} | {r.train_seconds:.0f} |"
        )
    print()
    for r in runs:
        lines = [
            f"{what}: {'n/a (< 20,000 leads)' if held is None else 'held' if held else 'MISSED'}"
            for what, held in r.verdicts()
        ]
        print(f"{r.shape}: {'; '.join(lines)}")
        print(f"    served model: {r.model}" + "".join(f"; {note}" for note in r.notes))


if __name__ == "__main__":
    main()
