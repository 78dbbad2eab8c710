"""Benchmark: the feature table of 1M leads / 10M touchpoints with Spark local[1], local[2] and the
pandas path, on the same Parquet files, outputs checked equal.

    .venv/bin/python bench/spark_features.py                          # 1M leads, 10M touchpoints
    .venv/bin/python bench/spark_features.py --leads 100000 --touchpoints 1000000

Each run reads the Parquet files, computes the feature table of every lead at one moment and
writes it as Parquet; the time covers read + compute + write (not the JVM's start). Each Spark
run is a process of its own (a fresh JVM with its master). The featurizer is fitted once on a
100k-lead sample and shared as JSON. Equality: every feature column, sorted by lead, bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.feature_pipeline import ATTRIBUTE_TYPES, NOW, generate  # noqa: E402
from bench.machine import describe_machine  # noqa: E402
from features.featurizer import LeadFeaturizer  # noqa: E402

SHUFFLE_PARTITIONS = 16


def prepare(folder: Path, n_leads: int, n_touches: int) -> None:
    """Parquet files of synthetic leads (with as_of = NOW) and touchpoints, and the featurizer."""
    if (folder / "featurizer.json").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    leads, touchpoints = generate(n_leads, n_touches)
    leads["as_of"] = NOW
    leads.to_parquet(folder / "leads.parquet", index=False, row_group_size=100_000)
    touchpoints.to_parquet(folder / "touchpoints.parquet", index=False, row_group_size=1_000_000)
    sample = leads.sample(min(100_000, n_leads), random_state=0)
    featurizer = LeadFeaturizer().fit(sample, ATTRIBUTE_TYPES, touchpoints.head(1))
    (folder / "featurizer.json").write_text(json.dumps(featurizer.to_dict()))


def run_pandas(folder: Path, out: Path) -> float:
    featurizer = LeadFeaturizer.from_dict(json.loads((folder / "featurizer.json").read_text()))
    started = time.perf_counter()
    leads = pd.read_parquet(folder / "leads.parquet")
    touchpoints = pd.read_parquet(folder / "touchpoints.parquet")
    X = featurizer.transform(leads, touchpoints)
    table = pd.DataFrame(X, columns=list(featurizer.get_feature_names_out()))
    table.insert(0, "lead_id", leads["lead_id"].to_numpy())
    table.to_parquet(out, index=False)
    return time.perf_counter() - started


def run_spark(folder: Path, out: Path, master: str) -> float:
    from features.spark import feature_table, spark_session

    featurizer = LeadFeaturizer.from_dict(json.loads((folder / "featurizer.json").read_text()))
    spark = spark_session(
        master,
        app_name="leadscore-bench",
        shuffle_partitions=SHUFFLE_PARTITIONS,
        conf={
            "spark.driver.memory": "4g",
            # the same partitions for both masters: the speed-up measures cores, not plans
            "spark.sql.adaptive.coalescePartitions.enabled": "false",
        },
    )
    started = time.perf_counter()
    leads = spark.read.parquet(str(folder / "leads.parquet"))
    touchpoints = spark.read.parquet(str(folder / "touchpoints.parquet"))
    table = feature_table(spark, leads, touchpoints, featurizer, buckets=4 * SHUFFLE_PARTITIONS)
    table.drop("as_of").write.mode("overwrite").parquet(str(out))
    seconds = time.perf_counter() - started
    spark.stop()
    return seconds


def check_equal(expected: Path, got: Path) -> str:
    """'equal' when every feature column is the same bits for every lead, else what differs."""
    want = pq.read_table(expected)
    have = pq.read_table(got)
    if want.num_rows != have.num_rows:
        return f"rows differ: {want.num_rows} vs {have.num_rows}"
    order_want = np.argsort(want.column("lead_id").to_numpy(zero_copy_only=False), kind="stable")
    order_have = np.argsort(have.column("lead_id").to_numpy(zero_copy_only=False), kind="stable")
    ids_want = want.column("lead_id").to_numpy(zero_copy_only=False)[order_want]
    ids_have = have.column("lead_id").to_numpy(zero_copy_only=False)[order_have]
    if not np.array_equal(ids_want, ids_have):
        return "lead ids differ"
    for name in want.column_names[1:]:
        a = want.column(name).to_numpy()[order_want]
        b = have.column(name).to_numpy()[order_have]
        if not np.array_equal(a.view(np.int64), b.view(np.int64)):
            return f"column {name} differs"
    return "equal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--touchpoints", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=Path("/tmp/leadscore-bench-spark"))
    parser.add_argument("--run", choices=["pandas", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--master", default="local[1]", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.data / f"{args.leads}-{args.touchpoints}"
    if args.run:  # one timed run in this process
        if args.run == "pandas":
            seconds = run_pandas(folder, folder / "out-pandas.parquet")
        else:
            cores = args.master.removeprefix("local[").removesuffix("]")
            seconds = run_spark(folder, folder / f"out-spark-{cores}", args.master)
        print(json.dumps({"seconds": seconds}))
        return

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {describe_machine()}")
    prepare(folder, args.leads, args.touchpoints)
    runs = [("pandas", "pandas", None), ("spark local[1]", "spark", "local[1]"),
            ("spark local[2]", "spark", "local[2]")]  # fmt: skip
    results = {}
    for label, kind, master in runs:
        command = [sys.executable, __file__, "--leads", str(args.leads), "--touchpoints",
                   str(args.touchpoints), "--data", str(args.data), "--run", kind]  # fmt: skip
        if master:
            command += ["--master", master]
        load = os.getloadavg()[0]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{label} failed:\n{done.stderr[-3000:]}")
            return
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
        results[label] = (seconds, load)
    outputs = {
        "spark local[1]": folder / "out-spark-1",
        "spark local[2]": folder / "out-spark-2",
    }
    print(f"\n{args.leads:,} leads, {args.touchpoints:,} touchpoints; read + features + write\n")
    print(f"{'engine':<16}{'seconds':>10}{'leads/s':>12}{'load avg (1 min)':>18}  output")
    for label, (seconds, load) in results.items():
        check = (
            "reference" if label == "pandas"
            else check_equal(folder / "out-pandas.parquet", outputs[label])
        )  # fmt: skip
        print(f"{label:<16}{seconds:>10.1f}{args.leads / seconds:>12,.0f}{load:>18.2f}  {check}")
    one, two = results["spark local[1]"][0], results["spark local[2]"][0]
    print(f"\nspeed-up local[1] -> local[2]: {one / two:.2f}x (target >= 1.6x)")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
