"""Deal value and time to close on demo data against the oracle (issue 14's acceptance).

Trains through `training.train.train` (the same path as `leadscore train`) on `--leads` demo
leads, then scores fresh leads drawn with another seed, each seen 30 days after it was created
(where the oracle's information is complete) and still open then, with the served model:

- expected amount of the fresh leads that won (amount known): Spearman correlation with the
  amounts, the model's and the oracle's (`true_expected_amount`); the model must reach 0.9 of
  the oracle's;
- the chance of a win within 30/60/90 days, on the snapshots whose horizon is settled: ROC AUC,
  the model's and the oracle's (`process.true_win_within`), and the model's ECE;
- the combined probability (won within the 90-day horizon): ROC AUC gap to the oracle and ECE.

    .venv/bin/python bench/value_quality.py [--leads 50000] [--seed 0] [--search small]
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
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search", default="small")
    parser.add_argument("--fresh-leads", type=int, default=None, help="default: half of --leads")
    args = parser.parse_args()

    from bench.machine import describe_machine

    machine = describe_machine()  # the load average when the bench starts
    from features.data import demo
    from training.train import resolve_config, train

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.chdir(tmp)
        demo.write(demo.generate(args.leads, seed=args.seed), Path(tmp) / "demo", ("parquet",))
        config = resolve_config(
            None,
            leads=f"{tmp}/demo/leads.parquet",
            touchpoints=f"{tmp}/demo/touchpoints.parquet",
            outcomes=f"{tmp}/demo/outcomes.parquet",
        )
        config.training.search = args.search
        started = time.perf_counter()
        marks: list[tuple[str, float]] = []
        result = train(config, step=lambda s: marks.append((s, time.perf_counter() - started)))
        seconds = time.perf_counter() - started
        fresh_n = args.fresh_leads or max(2000, args.leads // 2)
        fresh_seed = args.seed + 1000
        demo.write(demo.generate(fresh_n, seed=fresh_seed), Path(tmp) / "fresh", ("parquet",))
        rows = fresh_rows(result.model_uri, Path(tmp) / "fresh")
    outlook_seconds = step_seconds(marks, "fitting the deal value", seconds)
    subscore_seconds = step_seconds(marks, "fitting the fit and engagement", seconds)
    confidence_seconds = step_seconds(marks, "counting similar training leads", seconds)

    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {machine}")
    print(
        f"model: {result.selected}; refit: {result.refit}; train {seconds:.0f} s, of which the "
        f"deal value and time-to-close step {outlook_seconds:.0f} s, fit and engagement "
        f"{subscore_seconds:.0f} s, confidence {confidence_seconds:.0f} s"
    )
    print(
        f"fresh leads: {fresh_n:,} (seed {fresh_seed}), open 30 days after creation: {len(rows):,}"
    )
    print()
    report(rows)


def step_seconds(marks: list[tuple[str, float]], prefix: str, total: float) -> float:
    for i, (name, at) in enumerate(marks):
        if name.startswith(prefix):
            return (marks[i + 1][1] if i + 1 < len(marks) else total) - at
    return float("nan")


def fresh_rows(model_uri: str, directory: Path):
    """The fresh leads open 30 days after creation, scored by the served model, with the
    oracle's truths and what happened."""
    import pandas as pd

    from features.data.config import DataConfig
    from features.data.demo.process import true_win_within
    from features.data.loading import load_lead_data
    from features.model.artifact import load_model_scorer
    from features.snapshots import attach_attributes
    from training.data import data_now
    from training.timing import open_snapshots

    data = load_lead_data(DataConfig.from_directory(directory))
    now = data_now(data)
    snaps = open_snapshots(data.leads, data.outcomes, (30,), now)
    frame = attach_attributes(snaps, data.leads)
    scorer = load_model_scorer(model_uri)
    scored = scorer.score_frame(frame, data.touchpoints, explain=False)
    oracle = pd.read_parquet(directory / "oracle.parquet").set_index("lead_id")
    truth = oracle.reindex(frame["lead_id"].astype(str))
    p, a, b = (truth[c].to_numpy() for c in ("true_win_probability", "true_close_beta_a",
                                             "true_close_beta_b"))  # fmt: skip
    out = scored.assign(
        as_of_ns=frame["as_of"]
        .dt.tz_convert("UTC")
        .dt.tz_localize(None)
        .to_numpy()
        .astype("int64"),
        closed_ns=frame["closed_ns"].to_numpy(),
        won=frame["won"].to_numpy(),
        true_probability=p,
        true_expected_amount=truth["true_expected_amount"].to_numpy(),
        now_ns=int(now.tz_convert("UTC").tz_localize(None).as_unit("ns").value),
    )
    for horizon in (30, 60, 90):
        out[f"true_within_{horizon}d"] = true_win_within(p, a, b, 30, horizon)
    amounts = data.outcomes[data.outcomes["won"]].set_index("lead_id")["amount"]
    out["amount"] = amounts.reindex(out["lead_id"].astype(str)).to_numpy()
    return out


def report(rows) -> None:
    import numpy as np
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from training.evaluate import expected_calibration_error
    from training.timing import DAY_NS

    winners = rows[rows["won"] & rows["amount"].notna()]
    model_rho = spearmanr(winners["expected_amount"], winners["amount"]).statistic
    oracle_rho = spearmanr(winners["true_expected_amount"], winners["amount"]).statistic
    with_truth = spearmanr(winners["expected_amount"], winners["true_expected_amount"]).statistic
    coverage = (
        (winners["amount"] >= winners["amount_low"]) & (winners["amount"] <= winners["amount_high"])
    ).mean()
    print(
        "| expected amount of winners | deals | model Spearman | oracle Spearman | model / oracle (>= 0.9) | model vs true expected | 80% interval coverage |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| fresh leads that won, amount known | {len(winners):,} | {model_rho:.4f} | "
        f"{oracle_rho:.4f} | **{model_rho / oracle_rho:.3f}** | {with_truth:.4f} | {coverage:.3f} |"
    )
    print()
    print(
        "| win within | settled snapshots | win rate | model ROC AUC | oracle ROC AUC | gap (<= 0.02) | ECE (<= 0.02) | lower than a shorter horizon |"
    )
    print("|---|---|---|---|---|---|---|---|")
    previous = np.zeros(len(rows))
    for horizon in (30, 60, 90):
        chance = rows[f"win_within_{horizon}d"].to_numpy()
        end = rows["as_of_ns"].to_numpy() + horizon * DAY_NS
        closed = rows["closed_ns"].to_numpy()
        within = (closed >= 0) & (closed <= end)
        known = within | (end <= rows["now_ns"].to_numpy())
        label = (rows["won"].to_numpy() & within)[known]
        model_auc = roc_auc_score(label, chance[known])
        oracle_auc = roc_auc_score(label, rows[f"true_within_{horizon}d"].to_numpy()[known])
        ece = expected_calibration_error(label, chance[known])
        falls = int((chance < previous - 1e-12).sum())
        previous = chance
        print(
            f"| {horizon} days | {known.sum():,} | {label.mean():.3f} | {model_auc:.4f} | "
            f"{oracle_auc:.4f} | **{oracle_auc - model_auc:+.4f}** | **{ece:.4f}** | {falls} |"
        )
    label = rows["won"].to_numpy() & (rows["closed_ns"].to_numpy() >= 0)
    settled = (rows["closed_ns"].to_numpy() >= 0) | (
        rows["as_of_ns"].to_numpy() + 90 * DAY_NS <= rows["now_ns"].to_numpy()
    )
    model_auc = roc_auc_score(label[settled], rows["probability"][settled])
    oracle_auc = roc_auc_score(label[settled], rows["true_probability"][settled])
    ece = expected_calibration_error(label[settled], rows["probability"][settled])
    print()
    print(
        "| combined probability (won within 90 days) | snapshots | model ROC AUC | oracle ROC AUC | gap (<= 0.01) | ECE |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| 30-day snapshots of fresh leads | {settled.sum():,} | {model_auc:.4f} | {oracle_auc:.4f} | **{oracle_auc - model_auc:+.4f}** | {ece:.4f} |"
    )
    winners = rows[label & settled]
    days = (winners["closed_ns"] - winners["as_of_ns"]) / DAY_NS
    print()
    print(
        f"median days to close of the winners: predicted (median over them) "
        f"{winners['median_days_to_close'].median():.1f}, actual {days.median():.1f}"
    )


if __name__ == "__main__":
    main()
