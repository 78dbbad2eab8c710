"""Benchmark: files -> registered model for a million leads.

    .venv/bin/python bench/train.py [--leads 1000000] [--data DIR] [--keep]

Generates demo data (not timed) unless --data points at a directory with leads/touchpoints/
outcomes Parquet files, then runs `leadscore train --json` in a child process against a fresh
SQLite MLflow store and reports wall time and the child's peak memory (ru_maxrss). Training
learns from a random sample of at most `training.max_training_rows` (300,000) snapshots and is
evaluated on at most `training.max_holdout_rows` (200,000); above 100,000 training snapshots one
validation split replaces cross-validation. Both are recorded on the run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine as machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--data", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "demo"
        if not args.data:
            from features.data.demo import create_demo_data

            started = time.perf_counter()
            create_demo_data(data, args.leads, seed=args.seed, formats=("parquet",))
            print(
                f"generated {args.leads:,} demo leads in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        import pyarrow.parquet as pq

        n_leads = pq.ParquetFile(data / "leads.parquet").metadata.num_rows
        n_touches = pq.ParquetFile(data / "touchpoints.parquet").metadata.num_rows
        command = [
            sys.executable, "-m", "leadscore", "train",
            "--leads", str(data / "leads.parquet"), "--touchpoints", str(data / "touchpoints.parquet"),
            "--outcomes", str(data / "outcomes.parquet"), "--json",
        ]  # fmt: skip
        machine_at_start = machine()
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
            "PYTHONPATH": str(ROOT),
        }
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        if done.returncode != 0:
            print(done.stderr[-3000:])
            raise SystemExit(done.returncode)
        summary = json.loads(done.stdout[done.stdout.index("{") :])
    m = summary["metrics"]
    print(
        f"command: {' '.join(sys.argv)}  (runs: leadscore train --leads ... --touchpoints ... --outcomes ... --json)"
    )
    print(f"machine: {machine_at_start}")
    print(
        "| leads | touchpoints | files -> registered model (s) | peak RSS (GB) | model | holdout ROC AUC | ECE |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {n_leads:,} | {n_touches:,} | {seconds:.0f} | {peak_gb:.1f} | {summary['model']} | "
        f"{m['roc_auc']:.4f} | {m['ece']:.4f} |"
    )
    for warning in summary["warnings"]:
        print(f"note: {warning}")


if __name__ == "__main__":
    main()
