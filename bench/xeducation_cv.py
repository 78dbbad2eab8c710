"""Acceptance on real data: 5-fold cross-validation on X Education driven through the CLI.

For each fold, `leadscore train` learns from the other four folds (with the sales-filled columns
excluded) and `leadscore score` scores the held-out fold, label column left in (score ignores it).
Prints held-out ROC AUC and Brier score per fold and their mean.

    .venv/bin/python bench/xeducation_cv.py [--data ../shared/data/xeducation_leads.csv] [--also-exclude COL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SALES_FILLED = [
    "Tags", "Lead Quality", "Lead Profile", "Asymmetrique Activity Index", "Asymmetrique Profile Index",
    "Asymmetrique Activity Score", "Asymmetrique Profile Score", "Last Activity", "Last Notable Activity",
]  # fmt: skip
# A sequential lead id, not an attribute: it encodes time, so random CV would reward interpolating
# drift that new leads cannot have (the loader drops identifier-like columns anyway; explicit here).
IDENTIFIERS = ["Lead Number"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data", default=str(ROOT.parent / "shared" / "data" / "xeducation_leads.csv")
    )
    parser.add_argument("--also-exclude", action="append", default=[])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    from sklearn.metrics import brier_score_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    leads = pd.read_csv(args.data)
    y = leads["Converted"].to_numpy()
    exclude = SALES_FILLED + IDENTIFIERS + args.also_exclude
    # this interpreter on this checkout (the editable install may point at another one)
    cli = [sys.executable, "-m", "leadscore"]
    rows = []
    sys.path.insert(0, str(ROOT))
    from bench.machine import describe_machine

    machine_at_start = describe_machine()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
            "PYTHONPATH": str(ROOT),
        }
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(leads, y)
        for k, (train_idx, test_idx) in enumerate(folds, start=1):
            train_path, test_path, out = (
                f"{tmp}/train{k}.csv",
                f"{tmp}/test{k}.csv",
                f"{tmp}/scores{k}.csv",
            )
            leads.iloc[train_idx].to_csv(train_path, index=False)
            leads.iloc[test_idx].to_csv(test_path, index=False)
            command = [*cli, "train", "--leads", train_path, "--id", "Prospect ID", "--label", "Converted",
                       "--model-name", f"xeducation-fold{k}", "--json"]  # fmt: skip
            for column in exclude:
                command += ["--exclude", column]
            subprocess.run(command, check=True, env=env, cwd=tmp, capture_output=True)
            subprocess.run(
                [*cli, "score", "--model", f"models:/xeducation-fold{k}@challenger", "--leads", test_path,
                 "--out", out, "--json"],
                check=True, env=env, cwd=tmp, capture_output=True,
            )  # fmt: skip
            scores = pd.read_csv(out)
            truth = leads.iloc[test_idx][["Prospect ID", "Converted"]].rename(
                columns={"Prospect ID": "lead_id"}
            )
            merged = truth.merge(scores, on="lead_id")
            assert len(merged) == len(test_idx), "every held-out lead must be scored once"
            auc = roc_auc_score(merged["Converted"], merged["probability"])
            brier = brier_score_loss(merged["Converted"], merged["probability"])
            rows.append((k, auc, brier))
            print(f"fold {k}: ROC AUC {auc:.4f}  Brier {brier:.4f}", flush=True)
    seconds = time.perf_counter() - started
    print(f"\ncommand: {' '.join(sys.argv)}")
    print(f"machine: {machine_at_start}; {seconds:.0f} s in all")
    print(f"excluded: {', '.join(exclude)}")
    print("| fold | ROC AUC | Brier |\n|---|---|---|")
    for k, auc, brier in rows:
        print(f"| {k} | {auc:.4f} | {brier:.4f} |")
    print(f"| mean | {np.mean([r[1] for r in rows]):.4f} | {np.mean([r[2] for r in rows]):.4f} |")


if __name__ == "__main__":
    main()
