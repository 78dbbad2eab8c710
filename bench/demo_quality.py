"""Model quality on demo data against the oracle (the generator's true win probabilities).

Trains through `training.train.train` (the same path as `leadscore train`), then compares, on the
held-out leads' 30-day snapshots (where the oracle's information is complete), the model's ROC AUC
with the oracle's, and the model's expected calibration error.

    .venv/bin/python bench/demo_quality.py [--leads 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
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
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from features import demo
    from features.contract import load_lead_data
    from training.evaluate import expected_calibration_error
    from training.train import resolve_config, train

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.chdir(tmp)
        data = demo.generate(args.leads, seed=args.seed)
        demo.write(data, Path(tmp) / "demo", formats=("parquet",))
        config = resolve_config(
            None, leads=f"{tmp}/demo/leads.parquet", touchpoints=f"{tmp}/demo/touchpoints.parquet",
            outcomes=f"{tmp}/demo/outcomes.parquet",
        )
        config.training.search = args.search
        started = time.perf_counter()
        result, holdout = train_and_holdout(config, train, load_lead_data)
        seconds = time.perf_counter() - started
        oracle = pd.read_parquet(f"{tmp}/demo/oracle.parquet")
    merged = holdout.merge(oracle, on="lead_id")
    at30 = merged[merged["snapshot_age_days"] == 30]
    y = at30["label"].to_numpy()
    model_auc = roc_auc_score(y, at30["probability"])
    oracle_auc = roc_auc_score(y, at30["true_win_probability"])
    ece = expected_calibration_error(y, at30["probability"])
    ece_all = expected_calibration_error(merged["label"], merged["probability"])
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"| leads | model | holdout 30-day snapshots | model ROC AUC | oracle ROC AUC | gap | ECE (30 d) | ECE (all ages) | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.leads} | {result.selected} | {len(at30)} | {model_auc:.4f} | {oracle_auc:.4f} | "
          f"{oracle_auc - model_auc:+.4f} | {ece:.4f} | {ece_all:.4f} | {seconds:.0f} |")


def train_and_holdout(config, train, load_lead_data):
    """Train and return (result, holdout frame with lead_id, snapshot age, label, probability)."""
    import mlflow

    from features.pyfunc_model import load_model_scorer
    from training.data import build_examples, split_holdout

    result = train(config)
    data = load_lead_data(config.data)
    examples = build_examples(data, config.features, config.training.now)
    settle = max(config.features.snapshot_ages_days) + config.features.horizon_days
    split = split_holdout(examples, config.training.holdout_fraction, 42, settle)
    frame = examples.frame.iloc[split.holdout]
    scorer = load_model_scorer(result.model_uri)
    probability = scorer.predict_proba(frame, data.touchpoints)
    out = frame[["lead_id", "snapshot_age_days"]].copy()
    out["label"] = examples.labels[split.holdout]
    out["probability"] = probability
    return result, out


if __name__ == "__main__":
    main()
