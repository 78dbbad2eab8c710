"""Model quality on demo data against the oracle (the generator's true win probabilities).

Trains through `training.train.train` (the same path as `leadscore train`), then compares, on
30-day snapshots (where the oracle's information is complete), the model's ROC AUC with the
oracle's, and the model's expected calibration error, twice:

- on the run's own holdout, scored by the evaluation model (fitted without the holdout);
- on fresh leads drawn from the generator with another seed, scored by the served model (which,
  refitted on training + holdout, has seen every lead of the training data).

    .venv/bin/python bench/demo_quality.py [--leads 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search", default="small")
    parser.add_argument("--fresh-leads", type=int, default=None, help="default: half of --leads")
    args = parser.parse_args()

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from features.data import demo
    from features.data.loading import load_lead_data
    from training.evaluate import expected_calibration_error
    from training.train import resolve_config, train

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.chdir(tmp)
        data = demo.generate(args.leads, seed=args.seed)
        demo.write(data, Path(tmp) / "demo", formats=("parquet",))
        config = resolve_config(
            None,
            leads=f"{tmp}/demo/leads.parquet",
            touchpoints=f"{tmp}/demo/touchpoints.parquet",
            outcomes=f"{tmp}/demo/outcomes.parquet",
        )
        config.training.search = args.search
        started = time.perf_counter()
        result, holdout = train_and_holdout(config, train, load_lead_data)
        seconds = time.perf_counter() - started
        oracle = pd.read_parquet(f"{tmp}/demo/oracle.parquet")
        fresh_n = args.fresh_leads or max(2000, args.leads // 2)
        fresh_data = demo.generate(fresh_n, seed=args.seed + 1000)
        demo.write(fresh_data, Path(tmp) / "fresh", formats=("parquet",))
        fresh, fresh_oracle = fresh_scores(result, tmp, resolve_config, load_lead_data)
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
        at30 = merged[merged["snapshot_age_days"] == 30]
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


def fresh_scores(result, tmp, resolve_config, load_lead_data):
    """Every settled snapshot of the fresh leads, scored by the served model, and their oracle."""
    import pandas as pd

    from features.model.artifact import load_model_scorer
    from training.data import build_examples

    config = resolve_config(
        None,
        leads=f"{tmp}/fresh/leads.parquet",
        touchpoints=f"{tmp}/fresh/touchpoints.parquet",
        outcomes=f"{tmp}/fresh/outcomes.parquet",
    )
    data = load_lead_data(config.data)
    examples = build_examples(data, config.features, config.training.now)
    frame = examples.frame
    scorer = load_model_scorer(result.model_uri)
    out = frame[["lead_id", "snapshot_age_days"]].copy()
    out["label"] = examples.labels
    out["probability"] = scorer.predict_proba(frame, data.touchpoints)
    return out, pd.read_parquet(f"{tmp}/fresh/oracle.parquet")


def train_and_holdout(config, train, load_lead_data):
    """Train and return (result, holdout frame with lead_id, snapshot age, label, probability)."""

    from features.model.artifact import load_model_scorer
    from training.data import build_examples, split_holdout

    result = train(config)
    data = load_lead_data(config.data)
    examples = build_examples(data, config.features, config.training.now)
    settle = max(config.features.snapshot_ages_days) + config.features.horizon_days
    split = split_holdout(examples, config.training.holdout_fraction, 42, settle)
    frame = examples.frame.iloc[split.holdout]
    # the model fitted without the holdout: a refitted served model has learned these leads
    scorer = load_model_scorer(result.model_uri, evaluation=True)
    probability = scorer.predict_proba(frame, data.touchpoints)
    out = frame[["lead_id", "snapshot_age_days"]].copy()
    out["label"] = examples.labels[split.holdout]
    out["probability"] = probability
    return result, out


if __name__ == "__main__":
    main()
