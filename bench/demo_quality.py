"""Model quality on demo data against the oracle (the generator's true win probabilities).

Trains through `training.train.train` (the same path as `leadscore train`), then compares, on
30-day snapshots (where the oracle's information is complete), the model's ROC AUC with the
oracle's, and the model's expected calibration error, twice:

- on the run's own holdout, scored by the evaluation model (fitted without the holdout);
- on fresh leads drawn from the generator with another seed, scored by the served model (which,
  refitted on training + holdout, has seen every lead of the training data).

    .venv/bin/python bench/demo_quality.py [--leads 20000] [--seed 0]

The parts `bench/shapes.py` shares: `write_demo`, `train_on_demo`, `demo_examples`,
`fresh_scores`, `at_age`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SEED = 42  # train()'s seed: the holdout split and the candidates' seeds
SETTLED_AGE = 30  # days: the snapshot age the oracle's information is complete at


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search", default="small")
    parser.add_argument("--fresh-leads", type=int, default=None, help="default: half of --leads")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from features.data import demo
    from training.evaluate import expected_calibration_error

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.chdir(tmp)
        config = write_demo(demo.generate(args.leads, seed=args.seed), Path(tmp) / "demo")
        config.training.search = args.search
        result, seconds = train_on_demo(config)
        holdout = holdout_scores(result, config)
        oracle = demo_oracle(Path(tmp) / "demo")
        fresh_n = args.fresh_leads or max(2000, args.leads // 2)
        fresh_data = demo.generate(fresh_n, seed=args.seed + 1000)
        fresh = fresh_scores(result, write_demo(fresh_data, Path(tmp) / "fresh"))
        fresh_oracle = demo_oracle(Path(tmp) / "fresh")
    from bench.machine import describe_machine

    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {describe_machine()}")
    print(
        f"model: {result.selected}; refitted on training + holdout: {result.summary().get('refit')}; "
        f"train {seconds:.0f} s"
    )
    print(
        "| leads scored | by | 30-day snapshots | model ROC AUC | oracle ROC AUC | gap | ECE (30 d) | ECE (all ages) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for what, scored, truth in (
        (f"holdout of the {args.leads:,} training leads", holdout, oracle),
        (f"{fresh_n:,} fresh leads (seed {args.seed + 1000})", fresh, fresh_oracle),
    ):
        merged = scored.merge(truth, on="lead_id")
        at30 = at_age(scored, truth)
        y = at30["label"].to_numpy()
        model_auc = roc_auc_score(y, at30["probability"])
        oracle_auc = roc_auc_score(y, at30["true_win_probability"])
        ece = expected_calibration_error(y, at30["probability"])
        ece_all = expected_calibration_error(merged["label"], merged["probability"])
        by = "evaluation model" if scored is holdout else "served model"
        print(
            f"| {what} | {by} | {len(at30)} | {model_auc:.4f} | {oracle_auc:.4f} | "
            f"{oracle_auc - model_auc:+.4f} | {ece:.4f} | {ece_all:.4f} |"
        )


def write_demo(data: Any, directory: Path) -> Any:
    """Write generated demo data as Parquet into `directory`; the run config reading it."""
    from features.data import demo
    from training.train import resolve_config

    demo.write(data, directory, formats=("parquet",))
    return resolve_config(
        None,
        leads=f"{directory}/leads.parquet",
        touchpoints=f"{directory}/touchpoints.parquet",
        outcomes=f"{directory}/outcomes.parquet",
    )


def demo_oracle(directory: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(directory / "oracle.parquet")


def train_on_demo(config: Any) -> tuple[Any, float]:
    """Train and register as `leadscore train` does; the result and the wall-clock seconds."""
    from training.train import train

    started = time.perf_counter()
    result = train(config, seed=SEED)
    return result, time.perf_counter() - started


def demo_examples(config: Any) -> tuple[Any, Any]:
    """The lead data `config` reads and its labelled snapshots (every settled one)."""
    from features.data.loading import load_lead_data
    from training.data import build_examples

    data = load_lead_data(config.data)
    return data, build_examples(data, config.features, config.training.now)


def fresh_scores(result: Any, config: Any) -> Any:
    """Every settled snapshot of the fresh leads `config` reads (lead_id, snapshot age, label,
    probability), scored by the served model."""
    from features.model.artifact import load_model_scorer

    data, examples = demo_examples(config)
    frame = examples.frame
    scorer = load_model_scorer(result.model_uri)
    out = frame[["lead_id", "snapshot_age_days"]].copy()
    out["label"] = examples.labels
    out["probability"] = scorer.predict_proba(frame, data.touchpoints)
    return out


def at_age(scored: Any, oracle: Any, age: float = SETTLED_AGE) -> Any:
    """The scored snapshots of one age beside the oracle's true probability."""
    merged = scored.merge(oracle, on="lead_id")
    return merged[merged["snapshot_age_days"] == age]


def holdout_scores(result: Any, config: Any) -> Any:
    """The run's holdout (lead_id, snapshot age, label, probability) scored by the evaluation
    model: a refitted served model has learned these leads."""
    from features.model.artifact import load_model_scorer
    from training.train import fitting_rows

    data, examples = demo_examples(config)
    _, _, holdout_rows = fitting_rows(examples, config, SEED)
    frame = examples.frame.iloc[holdout_rows]
    scorer = load_model_scorer(result.model_uri, evaluation=True)
    out = frame[["lead_id", "snapshot_age_days"]].copy()
    out["label"] = examples.labels[holdout_rows]
    out["probability"] = scorer.predict_proba(frame, data.touchpoints)
    return out


if __name__ == "__main__":
    main()
