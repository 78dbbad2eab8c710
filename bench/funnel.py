"""Benchmark of the funnel report maths on demo data (1M leads and ~10M touchpoints by default).

    .venv/bin/python bench/funnel.py                      # generate 1M demo leads in memory
    .venv/bin/python bench/funnel.py --leads 100000
    .venv/bin/python bench/funnel.py --data demo-data     # files from `leadscore demo-data`

The demo tables come from `features.data.demo.generate` (in memory) and are put into the
canonical shape the data contract hands over (channel spellings mapped by
`features.data.vocabulary.lookup_channel`, text as `str`), or are read from `--data` through
`load_lead_data` (that load is timed on its own line). Scores are made up from the generator's
true win probability (score = round(100 p), default grade bands and thresholds) so the grade,
score band and decision reports have something to group by. Each report is
`features.report.funnel.funnel` end to end: selecting leads, outcomes, attribution, sums and
percentiles; `--repeat` runs take the fastest. "cpu s" is the process's CPU time (the machine is
shared: wall seconds grow with the load average, CPU seconds much less).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe_machine, peak_rss_mb  # noqa: E402
from features.data.vocabulary import CHANNELS, lookup_channel  # noqa: E402
from features.report.funnel import funnel  # noqa: E402

REPORTS = (
    ("channel", "first_touch"),
    ("channel", "last_touch"),
    ("channel", "linear"),
    ("campaign", "linear"),
    ("week", "first_touch"),
    ("lead_source", "first_touch"),
    ("grade", "first_touch"),
    ("score_band", "first_touch"),
)


def _text(column: pa.ChunkedArray) -> pd.Series:
    """Arrow text (plain or dictionary) as a pandas `str` column, as the data contract gives it."""
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    return pd.Series(column.to_pandas(), copy=False).astype("str")


def _channels(column: pa.ChunkedArray) -> pd.Series:
    """Raw channel spellings mapped to the vocabulary through the dictionary (a few dozen values)."""
    column = column.combine_chunks()
    assert pa.types.is_dictionary(column.type)
    mapped = [lookup_channel(v) or "other" for v in column.dictionary.to_pylist()]
    codes = np.array([CHANNELS.index(m) for m in mapped], dtype=np.int32)
    indices = codes[column.indices.to_numpy(zero_copy_only=False)]
    categorical = pd.Categorical.from_codes(indices, categories=list(CHANNELS))
    return pd.Series(categorical).astype("str")


def generated(n_leads: int, seed: int) -> tuple[dict[str, pd.DataFrame], pd.Series]:
    from features.data.demo import generate

    data = generate(n_leads, seed=seed)
    leads = pd.DataFrame(
        {
            name: (
                data.leads[name].to_pandas() if name == "created_at" else _text(data.leads[name])
            )
            for name in data.leads.column_names
        }
    )
    tp = data.touchpoints
    touchpoints = pd.DataFrame(
        {
            "lead_id": _text(tp["lead_id"]),
            "occurred_at": tp["occurred_at"].to_pandas(),
            "channel": _channels(tp["channel"]),
            "activity": _text(tp["activity"]),
            "campaign": _text(tp["campaign"]),
            "value": tp["value"].to_pandas(),
        }
    )
    outcomes = data.outcomes.to_pandas()
    outcomes["lead_id"] = outcomes["lead_id"].astype("str")
    oracle = pd.Series(
        data.oracle["true_win_probability"].to_numpy(), index=data.oracle["lead_id"].to_pylist()
    )
    return {"leads": leads, "touchpoints": touchpoints, "outcomes": outcomes}, oracle


def loaded(directory: Path) -> tuple[dict[str, pd.DataFrame], pd.Series | None]:
    from features.data.config import DataConfig
    from features.data.loading import load_lead_data

    data = load_lead_data(DataConfig.from_directory(directory))
    oracle = None
    if (directory / "oracle.parquet").is_file():
        table = pd.read_parquet(directory / "oracle.parquet")
        oracle = pd.Series(
            table["true_win_probability"].to_numpy(), index=table["lead_id"].astype("str")
        )
    frames = {"leads": data.leads, "touchpoints": data.touchpoints, "outcomes": data.outcomes}
    return frames, oracle  # type: ignore[return-value]


def made_up_scores(lead_ids: pd.Series, probability: np.ndarray) -> pd.DataFrame:
    score = np.round(100 * probability)
    grade = np.select([score >= 60, score >= 35, score >= 15], ["A", "B", "C"], "D")
    decision = np.select([score >= 35, score >= 15], ["sales", "nurture"], "disqualify")
    return pd.DataFrame({"lead_id": lead_ids, "score": score, "grade": grade, "decision": decision})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=1_000_000, help="demo leads to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="read leads/touchpoints/outcomes from here")
    parser.add_argument("--repeat", type=int, default=1, help="runs per report (fastest kept)")
    args = parser.parse_args()

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {describe_machine()}")
    print(
        f"numpy {np.__version__}, pandas {pd.__version__}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}"
    )
    started, started_cpu = time.perf_counter(), time.process_time()
    if args.data is not None:
        frames, oracle = loaded(args.data)
        how = "load files through the data contract"
    else:
        frames, oracle = generated(args.leads, args.seed)
        how = "generate demo data (in memory)"
    setup_seconds = time.perf_counter() - started
    setup_cpu = time.process_time() - started_cpu
    leads = frames["leads"]
    probability = (
        oracle.reindex(leads["lead_id"]).to_numpy()
        if oracle is not None
        else np.random.default_rng(0).random(len(leads))
    )
    scores = made_up_scores(leads["lead_id"], probability)
    rows = (
        f"{len(leads):,} leads, {len(frames['touchpoints']):,} touchpoints, "
        f"{len(frames['outcomes']):,} outcomes"
    )
    print(f"data: {rows}")
    print()
    width = 34
    print(f"{'step':<{width}}  {'groups':>6}  {'seconds':>8}  {'cpu s':>6}  load average after")
    print(f"{'-' * width}  {'-' * 6}  {'-' * 8}  {'-' * 6}  ------------------")
    print(f"{how:<{width}}  {'':>6}  {setup_seconds:8.2f}  {setup_cpu:6.2f}  {_load()}")
    for by, attribution in REPORTS:
        best = best_cpu = float("inf")
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            table = funnel(
                leads,
                frames["touchpoints"],
                frames["outcomes"],
                by=by,
                attribution=attribution,
                scores=scores,
            )
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        name = f"funnel by {by}" + (f" ({attribution})" if table.attrs["attribution"] else "")
        print(f"{name:<{width}}  {len(table) - 1:>6}  {best:8.2f}  {best_cpu:6.2f}  {_load()}")
    print()
    print(f"peak memory: {peak_rss_mb() / 1024:.1f} GB (the process, data included)")
    total = table.iloc[-1]
    print(
        f"check: {int(total['leads']):,} leads, {int(total['won']):,} won, "
        f"win rate {total['win_rate']:.1%}"
    )


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
