"""Benchmark of the feature pipeline: a big batch (1M leads, 10M touchpoints) and one lead.

    .venv/bin/python bench/feature_pipeline.py                      # 1M leads, 10M touchpoints
    .venv/bin/python bench/feature_pipeline.py --leads 100000 --touchpoints 1000000

Synthetic canonical frames (as `features.contract` hands them over) are generated here, then
timed: fit (on a 100k sample), batch `transform` of every lead at one moment, and the API path
`transform_records` for one lead with 200 touchpoints (median of many calls). Peak memory is the
process high-water mark (ru_maxrss), so it includes the generated input data.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.config import FeatureConfig  # noqa: E402
from features.data.vocabulary import ACTIVITIES, CHANNELS  # noqa: E402  # noqa: E402
from features.featurizer import LeadFeaturizer  # noqa: E402

NOW = pd.Timestamp("2025-01-01", tz="UTC")
INDUSTRIES = ["Software", "software ", "Retail", "Manufacturing", "Finance", "Health care",
              "Education", "Select", "N/A", "Logistics", "Energy", "Media"]  # fmt: skip
TITLES = ["CEO", "CFO", "VP Sales", "VP Marketing", "Head of IT", "Director of Engineering",
          "Marketing Manager", "Sales Manager", "Software Engineer", "Accountant", "Analyst",
          "Select", "Founder", "Product Manager", "HR Business Partner"]  # fmt: skip
ATTRIBUTE_TYPES = {"industry": "categorical", "job_title": "categorical",
                   "employees": "numeric", "opted_in": "boolean"}  # fmt: skip


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def current_rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**3


from bench.machine import describe_machine as machine  # noqa: E402


def _strings(codes: np.ndarray, vocab: list[str]) -> pd.Series:
    array = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(vocab))
    return pd.Series(array.dictionary_decode().to_pandas(), copy=False).astype("str")


def generate(n_leads: int, n_touches: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.char.add("L", np.arange(n_leads).astype(str)).astype(object).tolist()
    created_s = NOW.value // 10**9 - rng.integers(1, 400 * 86_400, n_leads)
    leads = pd.DataFrame({
        "lead_id": pd.Series(ids, dtype="str"),
        "created_at": pd.to_datetime(created_s, unit="s", utc=True),
        "industry": _strings(rng.integers(0, len(INDUSTRIES), n_leads), INDUSTRIES),
        "job_title": _strings(rng.integers(0, len(TITLES), n_leads), TITLES),
        "employees": np.where(rng.random(n_leads) < 0.1, np.nan, rng.lognormal(4, 1.5, n_leads)),
        "opted_in": rng.random(n_leads) < 0.6,
    })  # fmt: skip
    lead = rng.integers(0, n_leads, n_touches)
    # Touches spread between creation and now (a few after the scoring moment on purpose).
    span = NOW.value // 10**9 - created_s[lead]
    occurred_s = created_s[lead] + (rng.random(n_touches) * span).astype(np.int64)
    campaigns = [f"campaign-{i}" for i in range(300)]
    campaign = rng.integers(-1, len(campaigns), n_touches)
    touchpoints = pd.DataFrame({
        "lead_id": _strings(lead, ids),
        "occurred_at": pd.to_datetime(occurred_s, unit="s", utc=True),
        "channel": _strings(rng.integers(0, len(CHANNELS), n_touches), list(CHANNELS)),
        "activity": _strings(rng.integers(0, len(ACTIVITIES), n_touches), list(ACTIVITIES)),
        "campaign": _strings(np.maximum(campaign, 0), campaigns).where(campaign >= 0),
        "value": np.where(rng.random(n_touches) < 0.7, np.nan, rng.random(n_touches) * 10),
    })  # fmt: skip
    del lead, occurred_s, campaign, span
    return leads, touchpoints


def one_lead_record(n_touches: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    as_of = NOW.to_pydatetime()
    touches = [
        {"occurred_at": as_of - timedelta(seconds=int(s)), "channel": CHANNELS[c],
         "activity": ACTIVITIES[a], "campaign": f"campaign-{k}", "value": float(v)}
        for s, c, a, k, v in zip(rng.integers(1, 200 * 86_400, n_touches),
                                 rng.integers(0, len(CHANNELS), n_touches),
                                 rng.integers(0, len(ACTIVITIES), n_touches),
                                 rng.integers(0, 20, n_touches), rng.random(n_touches))
    ]  # fmt: skip
    return {"lead_id": "L-api", "created_at": as_of - timedelta(days=120), "as_of": as_of,
            "attributes": {"industry": "Software", "job_title": "VP Marketing",
                           "employees": 120, "opted_in": True},
            "touchpoints": touches}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--touchpoints", type=int, default=10_000_000)
    parser.add_argument("--single-touches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []

    start = time.perf_counter()
    leads, touchpoints = generate(args.leads, args.touchpoints)
    generated_s = time.perf_counter() - start
    rss_data = current_rss_gb()

    featurizer = LeadFeaturizer(FeatureConfig())
    start = time.perf_counter()
    featurizer.fit(leads.sample(min(100_000, len(leads)), random_state=0), ATTRIBUTE_TYPES,
                   touchpoints)  # fmt: skip
    fit_s = time.perf_counter() - start

    frame = leads.assign(as_of=NOW - pd.Timedelta(days=3))
    peak_before_gb = peak_rss_gb()
    start = time.perf_counter()
    features = featurizer.transform(frame, touchpoints)
    batch_s = time.perf_counter() - start
    peak_gb = peak_rss_gb()
    assert features.shape == (args.leads, len(featurizer.get_feature_names_out()))
    assert np.isfinite(
        features[:, list(featurizer.get_feature_names_out()).index("touches_all")]
    ).all()
    rows.append((f"batch transform: {args.leads:,} leads, {args.touchpoints:,} touchpoints",
                 f"{batch_s:.1f} s", "<= 60 s"))  # fmt: skip
    rows.append(("  peak memory of the process (incl. input data)", f"{peak_gb:.2f} GB",
                 "<= 6 GB"))  # fmt: skip
    rows.append(("  peak before transform (data generation)", f"{peak_before_gb:.2f} GB", ""))
    rows.append(("  memory held by the input frames", f"{rss_data:.2f} GB", ""))
    rows.append(("  feature table", f"{features.shape[0]:,} x {features.shape[1]} float64", ""))
    rows.append(("  fit on a 100k-lead sample", f"{fit_s:.2f} s", ""))
    rows.append(("  generating the synthetic frames (not timed above)", f"{generated_s:.1f} s", ""))
    del features, frame, leads, touchpoints

    record = one_lead_record(args.single_touches)
    featurizer.transform_records([record])  # warm-up
    timings = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        featurizer.transform_records([record])
        timings.append(time.perf_counter() - t0)
    median_ms = statistics.median(timings) * 1e3
    p95_ms = sorted(timings)[int(0.95 * len(timings))] * 1e3
    rows.append((f"one lead, {args.single_touches} touchpoints (transform_records), median",
                 f"{median_ms:.3f} ms", "<= 1 ms"))  # fmt: skip
    rows.append((f"  p95 over {args.repeats} calls", f"{p95_ms:.3f} ms", ""))

    width = max(len(r[0]) for r in rows)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}")
    print()
    print(f"{'measure'.ljust(width)}  {'result':>22}  target")
    print(f"{'-' * width}  {'-' * 22}  ------")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>22}  {target}")


if __name__ == "__main__":
    main()
