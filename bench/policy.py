"""Benchmark of the qualification policy maths on the scoring hot path and in simulation.

    .venv/bin/python bench/policy.py [--leads 1000000] [--repeat 2000]

Prints one table: the operation, its size, median and p99 time per call, and peak memory
(tracemalloc) of the batch operations, with the command and the machine. Other work on the same
machine skews the figures: run it on a quiet machine for numbers to compare.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe_machine as machine  # noqa: E402
from features.policy.facts import lead_facts  # noqa: E402
from features.policy.monitoring import population_stability_index  # noqa: E402
from features.policy.rules import Policy, apply_policy, decide  # noqa: E402
from features.policy.thresholds import (  # noqa: E402
    choose_threshold,
    choose_value_threshold,
    threshold_table,
    value_table,
)


def timed(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def peak(fn) -> float:
    tracemalloc.start()
    fn()
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top / 1e6


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    policy = Policy()
    attributes = {"industry": "Software", "Do Not Email": "no", "company_size": "51-200"}
    touches = [
        {"activity": a}
        for a in ("visit", "email_open", "pricing_page_view", "visit", "demo_request") * 4
    ]
    facts_one = lead_facts(attributes, touches)
    scores_1k = rng.integers(0, 101, 1000)
    facts_1k = {"do_not_contact": rng.random(1000) < 0.05, "demo_request": rng.random(1000) < 0.1}
    p = rng.beta(1.2, 4.0, args.leads)
    y = (rng.random(args.leads) < p).astype(float)
    recent = rng.beta(1.4, 4.0, args.leads)
    table = threshold_table(p, y, 52)
    by_value = Policy(rank_by="expected_value", value_threshold=2000.0)
    values_1k = rng.lognormal(8, 1, 1000) * rng.beta(1.2, 4.0, 1000)
    ev = p * rng.lognormal(8, 1, args.leads)  # probability x expected deal amount
    values = value_table(ev, p, y, 52)

    rows = []
    slow = max(args.repeat // 100, 5)
    cases = [
        (
            "lead_facts (1 lead, 3 attributes, 20 touchpoints)",
            "1",
            lambda: lead_facts(attributes, touches),
            args.repeat,
            False,
        ),
        (
            "decide (1 lead: grade, decision, rule)",
            "1",
            lambda: decide(42.0, facts_one, policy),
            args.repeat,
            False,
        ),
        (
            "apply_policy (1 lead)",
            "1",
            lambda: apply_policy([42], [facts_one], policy),
            args.repeat,
            False,
        ),
        (
            "apply_policy (batch, columnar facts)",
            "1,000",
            lambda: apply_policy(scores_1k, facts_1k, policy),
            args.repeat // 10,
            True,
        ),
        (
            "decide ranked by expected value (1 lead)",
            "1",
            lambda: decide(42.0, facts_one, by_value, 2500.0),
            args.repeat,
            False,
        ),
        (
            "apply_policy ranked by expected value (batch)",
            "1,000",
            lambda: apply_policy(scores_1k, facts_1k, by_value, values_1k),
            args.repeat // 10,
            True,
        ),
        (
            "threshold_table with expected revenue (holdout)",
            f"{args.leads:,}",
            lambda: threshold_table(p, y, 52, ev),
            slow,
            True,
        ),
        (
            "value_table (holdout ranked by expected value)",
            f"{args.leads:,}",
            lambda: value_table(ev, p, y, 52),
            slow,
            True,
        ),
        (
            "choose_value_threshold (capacity, value)",
            f"{len(values):,} rows",
            lambda: [
                choose_value_threshold(values, "capacity", 2000),
                choose_value_threshold(values, "value", 2000, cost_per_lead=300),
            ],
            args.repeat // 10,
            False,
        ),
        (
            "threshold_table (holdout)",
            f"{args.leads:,}",
            lambda: threshold_table(p, y, 52),
            slow,
            True,
        ),
        (
            "choose_threshold (each of 4 ways)",
            "101 rows",
            lambda: [
                choose_threshold(table, b, v)
                for b, v in (("value", 5), ("capacity", 2000), ("precision", 0.4), ("recall", 0.8))
            ],
            args.repeat // 10,
            False,
        ),
        (
            "population_stability_index",
            f"{args.leads:,} vs {args.leads:,}",
            lambda: population_stability_index(p, recent),
            slow,
            True,
        ),
    ]
    for name, size, fn, repeat, measure_memory in cases:
        fn()  # warm up
        median, p99 = timed(fn, repeat)
        memory = f"{peak(fn):.1f} MB" if measure_memory else "-"
        rows.append((name, size, fmt_time(median), fmt_time(p99), memory, str(repeat)))

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}")
    headers = ("operation", "size", "median", "p99", "peak memory", "runs")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
