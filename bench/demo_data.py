"""Benchmark: generate demo data at scale, then load it back through the data contract.

    .venv/bin/python bench/demo_data.py --leads 1000000 [--format both] [--out DIR]

Each step runs in its own process so the peak RSS is that step's alone. Prints a table with the
command, the machine, the number of leads and touchpoints, seconds and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from bench.machine import describe_machine as machine  # noqa: E402


def child(step: str, leads: int, out: str, fmt: str, seed: int) -> None:
    """One measured step, run in a fresh process; prints a JSON line."""
    started = time.perf_counter()
    if step == "generate":
        from features.data.demo import create_demo_data

        formats = ("parquet", "csv") if fmt == "both" else (fmt,)
        summary = create_demo_data(out, leads, seed=seed, formats=formats)
        rows = {"leads": summary.leads, "touchpoints": summary.touchpoints}
    else:
        from features.data.config import DataConfig
        from features.data.loading import load_lead_data

        ext = step.split("-")[1]
        config = DataConfig(
            leads=f"{out}/leads.{ext}",
            touchpoints=f"{out}/touchpoints.{ext}",
            outcomes=f"{out}/outcomes.{ext}",
        )
        data = load_lead_data(config)
        rows = {"leads": len(data.leads), "touchpoints": len(data.touchpoints)}
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, **rows}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("parquet", "csv", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="where to write (default: a temporary directory)"
    )
    parser.add_argument("--skip-load", action="store_true", help="only time the generator")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="leadscore-bench-")
    if args.child:
        child(args.child, args.leads, out, args.format, args.seed)
        return

    steps = [
        ("generate", f"leadscore demo-data --leads {args.leads} --out DIR --format {args.format}")
    ]
    if not args.skip_load:
        for ext in ("parquet", "csv"):
            if args.format in (ext, "both"):
                steps.append(
                    (
                        f"load-{ext}",
                        f"load_lead_data(leads/touchpoints/outcomes.{ext})  # = leadscore validate",
                    )
                )
    results = []
    for step, command in steps:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                step,
                "--leads",
                str(args.leads),
                "--out",
                out,
                "--format",
                args.format,
                "--seed",
                str(args.seed),
            ],
            capture_output=True,
            check=False,
            text=True,
            cwd=ROOT,
        )
        if proc.returncode != 0:
            sys.exit(f"{step} failed:\n{proc.stderr}")
        results.append((command, json.loads(proc.stdout.strip().splitlines()[-1])))
    size_mb = sum(p.stat().st_size for p in Path(out).iterdir()) / 2**20
    load = os.getloadavg()[0]

    print(f"machine: {machine()}")
    print(
        f"load average at the end: {load:.1f} (other jobs share the CPU; figures include contention)"
    )
    print(f"files: {size_mb:,.0f} MB in {out}")
    print()
    header = f"| {'command':<78} | {'leads':>9} | {'touchpoints':>11} | {'seconds':>7} | {'peak RSS':>9} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for command, r in results:
        print(
            f"| {command:<78} | {r['leads']:>9,} | {r['touchpoints']:>11,} | {r['seconds']:>7.1f} | "
            f"{r['peak_mb']:>6,.0f} MB |"
        )
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
