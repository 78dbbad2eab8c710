"""leadscore against the oracle and two plain baselines on every demo data shape (issue 17).

For each shape (`leadscore demo-data --shape`): demo leads (seed 0) train leadscore through
`training.train.train`, as `bench/demo_quality.py` does; two baselines learn from the SAME examples
and feature matrix the served model learned from (`training.train.fitting_rows`, the served
model's featurizer, but for the wide category codes only a target encoder reads; training +
holdout when the served model was refitted on both):

- `HistGradientBoostingClassifier()` with default settings, native categorical splits;
- a one-hot logistic regression: `OneHotEncoder(handle_unknown='ignore')` for the categories,
  median-imputed, standardised numbers, `LogisticRegression()`.

Fresh leads of the shape (another seed) are scored by the served model and the baselines at their
30-day snapshots (where the oracle's information is complete); the table gives each ROC AUC beside
the oracle's, leadscore's calibration error, then the acceptance verdicts: leadscore is never below
either baseline, and within 0.01 of the oracle on every shape with >= 20,000 leads.

Beside them, a reference for what that many examples allow: the **well-specified fit**, a
logistic regression whose inputs are the generator's true logit terms (`oracle.true_design`), fitted
on the SAME examples (rows) leadscore learned from and scored on the same fresh snapshots. What it
knows that leadscore does not: which inputs the truth reads and how (the values of each attribute
as the process reads them, e.g. a job title's function and a country's region, each a one-hot;
`referrer` as a one-hot; the month and weekday of creation as one-hots and the renewal rule,
"renewal in the creation month or the two after", as one 0/1 column; each activity's count in the
first 21 days, of those seen before the snapshot, transformed as the truth transforms it, log1p or
"any"), that the logit is additive in them and that nothing else matters. What it does not know:
the effect sizes, which it learns from the labels, as leadscore does. A snapshot younger than 21
days gives it the counts seen so far (as the features have them), so at the 1- and 7-day
snapshots it is not exactly specified (the rest of the first 21 days and a win's pace are
unknown); at the 30-day snapshots a logistic regression in these terms plus an intercept per
snapshot age is exact (no win closes before day 31, so the label there is the win itself, against
the losses still open: the same logit, shifted). The penalty: L2, its strength chosen by grouped
(by lead) 5-fold CV on log loss among `WELL_SPECIFIED_CS`; every column but the referrer's one-hot
is multiplied by `UNPENALISED_SCALE`, so the penalty shrinks in effect only the referrer's effects.
Its gap to the oracle is estimation error that any learner fitted on these examples can expect;
the rest of leadscore's gap is leadscore's own.

The second table separates estimation from information: the same fit on the same rows cut to the
30-day snapshots (exactly specified, a third of the rows), and both on `SCALE` times as many
leads of the shape (another seed, every snapshot training would take). A gap that shrinks with
more leads is estimation error; one that stays is information the 30-day snapshot lacks (none
here: the oracle reads nothing a 30-day snapshot has not seen).

    .venv/bin/python bench/shapes.py [--shapes default small] [--leads N] [--fresh-leads 20000]
        [--scale 5]

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
WELL_SPECIFIED_CS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)  # the referrer's L2 strengths
UNPENALISED_SCALE = 30.0  # columns other than the referrer's: a 900x weaker penalty in effect
SCALE = 5  # the second reference: the well-specified fit on this many times the leads


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
    well_specified_auc: dict[str, float]  # by `REFERENCES` key
    well_specified_c: dict[str, float]  # the L2 strength CV chose, by `REFERENCES` key
    reference_rows: dict[str, int]  # training rows, by `REFERENCES` key

    @property
    def gap(self) -> float:
        return self.oracle_auc - self.leadscore_auc

    def reference_gap(self, key: str = "same") -> float:
        return self.oracle_auc - self.well_specified_auc[key]

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


def baseline_probabilities(
    result: Any, config: Any, fresh_config: Any, shape: str
) -> tuple[dict[str, Any], dict[str, Reference]]:
    """Each baseline fitted on the served model's examples and feature matrix; its probability
    for every settled snapshot of the fresh leads, in `fresh_scores`' order. Then the
    well-specified fit on the same rows (key "same") and on their 30-day rows ("same_30d")."""
    import numpy as np

    from features.feature import WIDE
    from features.model.artifact import load_model_scorer
    from training.models import fill_empty_columns
    from training.train import fitting_rows

    featurizer = load_model_scorer(result.model_uri).featurizer
    data, examples = demo_examples(config)
    _, train_rows, holdout_rows = fitting_rows(examples, config, SEED)
    rows = np.concatenate([train_rows, holdout_rows]) if result.refit else train_rows
    # the baselines read the columns they always read: not the wide codes a target encoder reads
    kept = np.flatnonzero(featurizer.column_kinds_ != WIDE)
    X, empty = fill_empty_columns(
        featurizer.transform(examples.frame.iloc[rows], data.touchpoints)[:, kept]
    )
    y = examples.labels[rows]
    fresh_data, fresh = demo_examples(fresh_config, fresh_config.features.snapshot_ages_days)
    X_fresh = featurizer.transform(fresh.frame, fresh_data.touchpoints)[:, kept]
    X_fresh[:, empty] = 0.0  # as in training: a column with no value there teaches nothing
    mask = np.asarray(featurizer.categorical_mask_, dtype=bool)[kept]
    probabilities = {
        name: model.fit(X, y).predict_proba(X_fresh)[:, 1]
        for name, model in baselines(mask).items()
    }
    ages = tuple(config.features.snapshot_ages_days)
    references = well_specified_references(
        (data, examples.frame.iloc[rows], y), (fresh_data, fresh.frame), shape, ages, ""
    )
    return probabilities, references


@dataclass
class Reference:
    """One well-specified fit: its probability for each fresh snapshot, the L2 strength chosen,
    the rows it learned from."""

    probability: Any
    c: float
    rows: int


REFERENCES = {  # key: what the fit learned from
    "same": "leadscore's rows",
    "same_30d": "leadscore's 30-day rows",
    "scaled": "{scale}x leads, every snapshot",
    "scaled_30d": "{scale}x leads, 30-day snapshots",
}


def well_specified_references(
    training: tuple[Any, Any, Any],
    fresh: tuple[Any, Any],
    shape: str,
    ages: tuple[float, ...],
    prefix: str,
) -> dict[str, Reference]:
    """The well-specified fit on `training` (lead data, snapshot frame, labels) at every
    snapshot age and at the 30-day ones alone, each scoring `fresh` (lead data, snapshot frame):
    keys `prefix` + "same" / "same_30d" ("scaled" ones with prefix "scaled": see REFERENCES)."""
    import numpy as np

    from bench.demo_quality import SETTLED_AGE

    data, frame, y = training
    X = snapshot_design(data, frame, shape, ages)
    X_fresh = snapshot_design(fresh[0], fresh[1], shape, ages)
    groups = frame["lead_id"].to_numpy()
    settled = (frame["snapshot_age_days"] == SETTLED_AGE).to_numpy()
    out = {}
    for key, rows in (("same", np.arange(len(frame))), ("same_30d", np.flatnonzero(settled))):
        model = fit_well_specified(X[0][rows], X[1], y[rows], groups[rows])
        name = key.replace("same", prefix) if prefix else key
        out[name] = Reference(
            model.predict_proba(X_fresh[0])[:, 1], float(np.ravel(model[-1].C_)[0]), len(rows)
        )
    return out


def snapshot_design(data: Any, frame: Any, shape: str, ages: tuple[float, ...]) -> tuple[Any, Any]:
    """The true design (`oracle.true_design`) of each snapshot of `frame` (lead_id,
    snapshot_age_days): its lead's terms at its age, then a one-hot of the snapshot age among
    `ages` (an intercept per age); and the referrer columns' mask."""
    import numpy as np
    import pandas as pd
    from scipy import sparse

    from features.data.demo.oracle import true_design

    position = pd.Index(data.leads["lead_id"]).get_indexer(frame["lead_id"])
    age = frame["snapshot_age_days"].to_numpy(dtype=float)
    assert (position >= 0).all(), "every snapshot's lead is in the lead data"
    parts, order = [], []
    for value in ages:
        rows = np.flatnonzero(age == value)
        design = true_design(data.leads, data.touchpoints, value, shape)
        parts.append(design.matrix[position[rows]])
        order.append(rows)
    matrix = sparse.vstack(parts, format="csr")[np.argsort(np.concatenate(order))]
    age_one_hot = sparse.csr_matrix(
        (age[:, None] == np.asarray(ages, dtype=float)[None, :]).astype(float)
    )
    mask = np.append(design.referrer, np.zeros(len(ages), dtype=bool))
    return sparse.hstack([matrix, age_one_hot], format="csr"), mask


def fit_well_specified(X: Any, referrer: Any, y: Any, groups: Any) -> Any:
    """The well-specified logistic regression, fitted: L2, its strength chosen by 5-fold CV
    grouped by lead (log loss); the columns outside `referrer` scaled up so the penalty barely
    touches them. A pipeline: the scaling applies to the rows it scores too."""
    import numpy as np
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    scale = np.where(referrer, 1.0, UNPENALISED_SCALE)
    folds = list(GroupKFold(n_splits=5).split(X, y, groups))
    model = make_pipeline(
        FunctionTransformer(lambda M: M.multiply(scale).tocsr(), accept_sparse=True),
        LogisticRegressionCV(
            Cs=list(WELL_SPECIFIED_CS),
            l1_ratios=(0.0,),
            cv=folds,
            scoring="neg_log_loss",
            solver="newton-cholesky",  # a few hundred columns: Newton steps, whatever the scales
            use_legacy_attributes=False,
        ),
    )
    return model.fit(X, y)


def scaled_references(
    shape: str, leads: int, seed: int, fresh: tuple[Any, Any], ages: tuple[float, ...], tmp: Path
) -> dict[str, Reference]:
    """The well-specified fits on `leads` leads of the shape (seed + 2000), every snapshot the
    training config takes of them (each lead at its drawn ages), scoring `fresh`."""
    from features.data import demo

    config = write_demo(demo.generate(leads, seed=seed + 2000, shape=shape), tmp)
    data, examples = demo_examples(config)
    training = (data, examples.frame, examples.labels)
    return well_specified_references(training, fresh, shape, ages, "scaled")


def run_shape(
    shape: str, leads: int, fresh_leads: int, seed: int, tmp: Path, scale: int = SCALE
) -> ShapeRun:
    from sklearn.metrics import roc_auc_score

    from features.data import demo
    from training.evaluate import expected_calibration_error

    config = write_demo(demo.generate(leads, seed=seed, shape=shape), tmp / shape / "demo")
    result, seconds = train_on_demo(config)
    fresh_dir = tmp / shape / "fresh"
    fresh_config = write_demo(demo.generate(fresh_leads, seed=seed + 1000, shape=shape), fresh_dir)
    scored = fresh_scores(result, fresh_config)
    probabilities, references = baseline_probabilities(result, config, fresh_config, shape)
    if scale:
        fresh_data, fresh = demo_examples(fresh_config, fresh_config.features.snapshot_ages_days)
        ages = tuple(config.features.snapshot_ages_days)
        references |= scaled_references(
            shape, leads * scale, seed, (fresh_data, fresh.frame), ages, tmp / shape / "scaled"
        )
    for name, probability in probabilities.items():
        scored[name] = probability
    for key, reference in references.items():
        scored[f"well_specified_{key}"] = reference.probability
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
        well_specified_auc={
            key: roc_auc_score(y, settled[f"well_specified_{key}"]) for key in references
        },
        well_specified_c={key: r.c for key, r in references.items()},
        reference_rows={key: r.rows for key, r in references.items()},
    )


def main() -> None:
    from features.data.demo.process import SHAPES

    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--leads", type=int, default=None, help="default: each shape's own")
    parser.add_argument("--fresh-leads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0, help="fresh leads: seed + 1000")
    parser.add_argument(
        "--scale",
        type=int,
        default=SCALE,
        help="the second reference's leads, times the shape's (seed + 2000); 0: none",
    )
    args = parser.parse_args()

    from bench.machine import describe_machine

    machine = describe_machine()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.chdir(tmp)
        for shape in args.shapes:
            leads = args.leads or SHAPES[shape].leads
            runs.append(run_shape(shape, leads, args.fresh_leads, args.seed, Path(tmp), args.scale))
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
        "| HGB ROC AUC | one-hot logistic ROC AUC | well-specified fit ROC AUC (gap) "
        "| leadscore ECE | train s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r.shape} | {r.leads:,} | {r.snapshots:,} | {r.win_rate:.1%} | {r.oracle_auc:.4f} "
            f"| {r.leadscore_auc:.4f} ({r.gap:+.4f}) | {r.hgb_auc:.4f} | {r.logistic_auc:.4f} "
            f"| {r.well_specified_auc['same']:.4f} ({r.reference_gap():+.4f}) "
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
        print(f"    {share_line(r)}")
    print()
    print_references(runs, args.scale)


def share_line(r: ShapeRun) -> str:
    """How much of leadscore's gap to the oracle the well-specified fit on its rows has too."""
    reference = r.reference_gap()
    share = f" ({reference / r.gap:.0%} of it)" if r.gap > 0 else ""
    return (
        f"well-specified fit on leadscore's {r.reference_rows['same']:,} rows: gap "
        f"{reference:+.4f}, against leadscore's {r.gap:+.4f}{share}; leadscore's own: "
        f"{r.gap - reference:+.4f}"
    )


def print_references(runs: list[ShapeRun], scale: int) -> None:
    """Estimation or information: the well-specified fit's gap on leadscore's rows, their
    30-day rows, and `scale` times the leads."""
    keys = [key for key in REFERENCES if any(key in r.well_specified_auc for r in runs)]
    words = [REFERENCES[key].format(scale=scale) for key in keys]
    print(
        "the well-specified fit (the generator's true logit terms, L2 by grouped CV) on more or "
        "fewer examples, the same fresh 30-day snapshots: ROC AUC (gap to the oracle), rows, "
        "the referrer's L2 strength C chosen"
    )
    print("| shape | oracle ROC AUC | " + " | ".join(words) + " |")
    print("|---|---|" + "---|" * len(keys))
    for r in runs:
        cells = [
            f"{r.well_specified_auc[key]:.4f} ({r.reference_gap(key):+.4f}), "
            f"{r.reference_rows[key]:,} rows, C={r.well_specified_c[key]:g}"
            if key in r.well_specified_auc
            else "n/a"
            for key in keys
        ]
        print(f"| {r.shape} | {r.oracle_auc:.4f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
