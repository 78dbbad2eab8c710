"""Benchmark of the many-lead scoring path with reasons: `LeadScorer.score_columns` in process.

    .venv/bin/python bench/reasons.py [--leads 1000] [--repeat 30] [--train-leads 2000]

Trains a logistic (splines) and a gradient-boosting model in process on demo data (no MLflow),
builds `--leads` API-style leads (attributes, 7 days of touchpoints) and times
`score_columns(leads)` with and without reasons: median and p90 wall clock, and the median CPU
time of the thread (less skewed by other work on a shared box). The set-up objects are frozen out
of the garbage collector first (`gc.freeze`, as `leadscore serve` does after loading the model). Only public calls are used, so
the same script times an older checkout: `PYTHONPATH=<checkout> python bench/reasons.py`.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe_machine as machine  # noqa: E402


def train(kind: str, directory: Path, n_leads: int):
    """(scorer, leads, touchpoints) of a model of `kind` fitted on `n_leads` demo leads."""
    from features.config import FeatureConfig
    from features.data.config import DataConfig
    from features.data.demo import create_demo_data
    from features.data.loading import load_lead_data
    from features.featurizer import LeadFeaturizer
    from features.model.calibration import CalibratedModel
    from features.model.reasons import typical_lead
    from features.model.scorer import LeadScorer
    from features.policy.rules import Policy
    from training.data import build_examples
    from training.models import Candidate, build_estimator

    if not (directory / "leads.parquet").exists():
        create_demo_data(directory, n_leads=n_leads, seed=7, formats=("parquet",))
    data = load_lead_data(DataConfig.from_directory(directory))
    config = FeatureConfig()
    examples = build_examples(data, config)
    featurizer = LeadFeaturizer(config).fit(data.leads, data.attribute_types, data.touchpoints)
    X = featurizer.transform(examples.frame, data.touchpoints)
    mask = featurizer.categorical_mask_
    params = {"C": 1.0, "splines": True} if kind == "logistic" else {}
    model = build_estimator(Candidate(kind, params), mask, seed=0).fit(X, examples.labels)
    scorer = LeadScorer(
        featurizer, CalibratedModel(model, {"method": "none"}), policy=Policy(),
        baseline=typical_lead(X, mask),
    )  # fmt: skip
    return scorer, data.leads, data.touchpoints


def records(leads, touchpoints, n: int, age_days: int = 7) -> list[dict]:
    """n leads as API records scored `age_days` after creation, with their touchpoints."""
    import pandas as pd

    leads = leads.head(n)
    touches = touchpoints[touchpoints["lead_id"].isin(leads["lead_id"])]
    by_lead = {lead_id: group for lead_id, group in touches.groupby("lead_id")}
    out = []
    for row in leads.to_dict("records"):
        as_of = row["created_at"].to_pydatetime() + timedelta(days=age_days)
        group = by_lead.get(row["lead_id"])
        items = [] if group is None else [
            {"occurred_at": t["occurred_at"].to_pydatetime(), "channel": t["channel"],
             "activity": t["activity"],
             "campaign": t["campaign"] if isinstance(t["campaign"], str) else None,
             "value": None if t["value"] != t["value"] else float(t["value"])}
            for t in group.to_dict("records")
            if t["occurred_at"].to_pydatetime() < as_of
        ]  # fmt: skip
        attributes = {
            k: (None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v)
            for k, v in row.items()
            if k not in ("lead_id", "created_at")
        }
        out.append({"lead_id": row["lead_id"], "created_at": row["created_at"].to_pydatetime(),
                    "as_of": as_of, "attributes": attributes, "touchpoints": items})  # fmt: skip
    return out


def timed(fn, repeat: int) -> tuple[float, float, float]:
    """(median wall, p90 wall, median thread CPU) seconds over `repeat` calls after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        c, w = time.thread_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.thread_time() - c)
    wall.sort()
    return statistics.median(wall), wall[int(0.9 * (len(wall) - 1))], statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--train-leads", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=None, help="demo data directory to reuse")
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {machine()}")
    directory = args.data or Path(tempfile.mkdtemp(prefix="bench-reasons-"))
    rows = []
    for kind in ("logistic", "gradient_boosting"):
        scorer, leads, touchpoints = train(kind, directory, args.train_leads)
        leads_in = records(leads, touchpoints, args.leads)
        gc.collect()
        gc.freeze()  # as the server does after loading: start-up objects are not traversed again
        for explain in (True, False):
            run = partial(scorer.score_columns, leads_in, explain=explain)
            median, p90, cpu = timed(run, args.repeat)
            rows.append((kind, len(leads_in), "yes" if explain else "no", median, p90, cpu))
    print()
    print(
        f"{'model':<18} {'leads':>6} {'reasons':>8} {'median':>10} {'p90':>10} {'cpu median':>11}"
    )
    for kind, n, explain, median, p90, cpu in rows:
        print(
            f"{kind:<18} {n:>6} {explain:>8} {median * 1e3:>8.1f}ms {p90 * 1e3:>8.1f}ms "
            f"{cpu * 1e3:>9.1f}ms"
        )


if __name__ == "__main__":
    main()
