"""Benchmark: the feature table of 1M leads / 10M touchpoints with Spark local[1], local[2] and the
pandas path, on the same Parquet files, outputs checked equal.

    .venv/bin/python bench/spark_features.py                          # 1M leads, 10M touchpoints
    .venv/bin/python bench/spark_features.py --leads 100000 --touchpoints 1000000
    .venv/bin/python bench/spark_features.py --no-pin                 # the unpinned runs only
    .venv/bin/python bench/spark_features.py --event-log /tmp/ev      # and each Spark run's stages

Each run reads the Parquet files, computes the feature table of every lead at one moment and
writes it as Parquet; the time covers read + compute + write (not the JVM's start). Each Spark
run is a process of its own (a fresh JVM with its master). The featurizer is fitted once on a
100k-lead sample and shared as JSON. Equality: every feature column, sorted by lead, bit for bit.

One core against two: `local[1]` runs one task at a time, but its process tree is not one core:
the JVM compiles code (JIT), collects garbage and feeds the Python worker in threads of their
own while the Python worker computes. So each run is first pinned (`sched_setaffinity`, as
`taskset -c` does; the JVM and the Python workers inherit it): pandas and `local[1]` to one core,
`local[2]` to two; then run again unpinned. Beside the wall time: the CPU seconds of the whole
process tree (JVM, Python driver and workers) and what the rest of the machine used meanwhile.
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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.feature_pipeline import ATTRIBUTE_TYPES, NOW, generate  # noqa: E402
from bench.machine import (  # noqa: E402
    describe_machine,
    machine_busy_cpu_seconds,
    process_tree_cpu_seconds,
)
from features.featurizer import LeadFeaturizer  # noqa: E402

SHUFFLE_PARTITIONS = 16
BUCKETS = 64  # one task each (features.spark.partition_keys): ~15,600 leads a pandas call
# (label, engine, master, cores when pinned)
RUNS = (("pandas", "pandas", None, 1), ("spark local[1]", "spark", "local[1]", 1),
        ("spark local[2]", "spark", "local[2]", 2))  # fmt: skip


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


class Meter:
    """Wall time, this process tree's CPU seconds and the rest of the machine's, from start()."""

    def start(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = process_tree_cpu_seconds()
        self.busy = machine_busy_cpu_seconds()

    def stop(self) -> dict[str, float]:
        seconds = time.perf_counter() - self.wall
        cpu = process_tree_cpu_seconds() - self.cpu
        others = machine_busy_cpu_seconds() - self.busy - cpu
        return {"seconds": seconds, "cpu_seconds": cpu, "others_cpu_seconds": max(others, 0.0)}


def run_pandas(folder: Path, out: Path) -> dict[str, float]:
    featurizer = LeadFeaturizer.from_dict(json.loads((folder / "featurizer.json").read_text()))
    meter = Meter()
    meter.start()
    leads = pd.read_parquet(folder / "leads.parquet")
    touchpoints = pd.read_parquet(folder / "touchpoints.parquet")
    X = featurizer.transform(leads, touchpoints)
    table = pd.DataFrame(X, columns=list(featurizer.get_feature_names_out()))
    table.insert(0, "lead_id", leads["lead_id"].to_numpy())
    table.to_parquet(out, index=False)
    return meter.stop()


def run_spark(folder: Path, out: Path, master: str, event_log: Path | None) -> dict[str, Any]:
    from features.spark import feature_table, spark_session

    featurizer = LeadFeaturizer.from_dict(json.loads((folder / "featurizer.json").read_text()))
    conf = {
        "spark.driver.memory": "4g",
        # the same partitions for both masters: the speed-up measures cores, not plans
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
    }
    if event_log is not None:
        event_log.mkdir(parents=True, exist_ok=True)
        conf |= {"spark.eventLog.enabled": "true", "spark.eventLog.dir": str(event_log),
                 "spark.eventLog.compress": "false"}  # fmt: skip
    spark = spark_session(
        master, app_name="leadscore-bench", shuffle_partitions=SHUFFLE_PARTITIONS, conf=conf
    )
    meter = Meter()
    meter.start()
    leads = spark.read.parquet(str(folder / "leads.parquet"))
    touchpoints = spark.read.parquet(str(folder / "touchpoints.parquet"))
    table = feature_table(spark, leads, touchpoints, featurizer, buckets=BUCKETS)
    table.drop("as_of").write.mode("overwrite").parquet(str(out))
    result: dict[str, Any] = dict(meter.stop())  # before stop(): the JVM and workers still live
    app = spark.sparkContext.applicationId
    spark.stop()
    if event_log is not None:
        result["stages"] = stage_summary(event_log, app)
    return result


def stage_summary(event_log: Path, app: str) -> list[str]:
    """One line per stage of a Spark event log: tasks, the stage's seconds, its longest and
    shortest task, and the task threads' CPU seconds (the JVM's other threads not included)."""
    files = [p for p in event_log.rglob(f"*{app}*") if p.is_file() and "appstatus" not in p.name]
    stages: dict[int, dict[str, Any]] = {}
    tasks: dict[int, list[dict[str, Any]]] = {}
    for path in files:
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["Event"] == "SparkListenerStageCompleted":
                stages[event["Stage Info"]["Stage ID"]] = event["Stage Info"]
            elif event["Event"] == "SparkListenerTaskEnd":
                tasks.setdefault(event["Stage ID"], []).append(event)
    lines = []
    for stage_id, info in sorted(stages.items()):
        ends = tasks.get(stage_id, [])
        took = [
            (e["Task Info"]["Finish Time"] - e["Task Info"]["Launch Time"]) / 1000 for e in ends
        ]
        cpu = sum(e.get("Task Metrics", {}).get("Executor CPU Time", 0) for e in ends) / 1e9
        seconds = (info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1000
        lines.append(
            f"stage {stage_id:>2}: {len(ends):>3} tasks, {seconds:6.1f} s, task longest "
            f"{max(took, default=0):5.1f} s, shortest {min(took, default=0):5.1f} s, task "
            f"threads' CPU {cpu:5.1f} s  ({info['Stage Name'][:40]})"
        )
    return lines


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


def pinned_cores(n: int) -> list[int]:
    """The first n cores this process may run on; exits saying why when there are fewer."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < n:
        sys.exit(f"--pin needs {n} cores and this process may use {allowed}; run with --no-pin")
    return allowed[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--touchpoints", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=Path("/tmp/leadscore-bench-spark"))
    parser.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=True,
        help="first run each engine pinned to as many cores as it is given (pandas and local[1] "
             "one, local[2] two), then unpinned (default); --no-pin: the unpinned runs only",
    )  # fmt: skip
    parser.add_argument("--event-log", type=Path, help="write Spark event logs here and print "
                        "each Spark run's stages (tasks, seconds, task CPU)")  # fmt: skip
    parser.add_argument("--run", choices=["pandas", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--master", default="local[1]", help=argparse.SUPPRESS)
    parser.add_argument("--cpus", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.data / f"{args.leads}-{args.touchpoints}"
    if args.run:  # one timed run in this process
        if args.cpus:  # before the JVM starts: it and its Python workers inherit the mask
            os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
        if args.run == "pandas":
            result: dict[str, Any] = dict(run_pandas(folder, folder / "out-pandas.parquet"))
        else:
            cores = args.master.removeprefix("local[").removesuffix("]")
            out = folder / f"out-spark-{cores}"
            result = run_spark(folder, out, args.master, args.event_log)
        print(json.dumps(result))
        return

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {describe_machine()}")
    prepare(folder, args.leads, args.touchpoints)
    modes = ["pinned", "unpinned"] if args.pin else ["unpinned"]
    rows = []
    seconds: dict[tuple[str, str], float] = {}
    stages: list[str] = []
    for mode in modes:
        for label, kind, master, n_cores in RUNS:
            cores = pinned_cores(n_cores) if mode == "pinned" else []
            command = [sys.executable, __file__, "--leads", str(args.leads), "--touchpoints",
                       str(args.touchpoints), "--data", str(args.data), "--run", kind]  # fmt: skip
            if master:
                command += ["--master", master]
            if cores:
                command += ["--cpus", ",".join(map(str, cores))]
            if args.event_log is not None:
                command += ["--event-log", str(args.event_log)]
            load = os.getloadavg()[0]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{label} ({mode}) failed:\n{done.stderr[-3000:]}")
                return
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if kind == "pandas":
                check = "reference"
            else:  # now: the next run of this master writes the same folder
                out = folder / f"out-spark-{master.removeprefix('local[').removesuffix(']')}"
                check = check_equal(folder / "out-pandas.parquet", out)
            where = f"core {cores[0]}" if len(cores) == 1 else f"cores {','.join(map(str, cores))}"
            where = where if cores else "any"
            rows.append((label, where, result, load, check))
            seconds[(mode, label)] = result["seconds"]
            if result.get("stages"):  # --event-log
                stages += [f"{label}, {mode}:", *[f"  {s}" for s in result["stages"]]]

    print(f"\n{args.leads:,} leads, {args.touchpoints:,} touchpoints; read + features + write")
    print("CPU s: user + system of the run's process tree (JVM, Python driver and workers);")
    print("others: CPU seconds the rest of the machine used meanwhile (a quiet machine: ~0)\n")
    print(f"{'engine':<16}{'pinned to':<12}{'seconds':>9}{'CPU s':>8}{'CPU/wall':>10}"
          f"{'leads/s':>10}{'others':>8}{'load':>7}  output")  # fmt: skip
    for label, where, result, load, check in rows:
        wall, cpu = result["seconds"], result["cpu_seconds"]
        print(f"{label:<16}{where:<12}{wall:>9.1f}{cpu:>8.1f}{cpu / wall:>10.2f}"
              f"{args.leads / wall:>10,.0f}{result['others_cpu_seconds']:>8.1f}{load:>7.2f}  "
              f"{check}")  # fmt: skip
    print()
    for mode in modes:
        one, two = seconds[(mode, "spark local[1]")], seconds[(mode, "spark local[2]")]
        what = (
            "one core -> two cores (target >= 1.6x)" if mode == "pinned"
            else "unpinned: local[1] may use every core too"
        )  # fmt: skip
        print(f"speed-up local[1] -> local[2], {what}: {one / two:.2f}x")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if stages:
        print("\nSpark stages (event logs in " + str(args.event_log) + "):")
        print("\n".join(stages))


if __name__ == "__main__":
    main()
