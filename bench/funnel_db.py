"""Benchmark of the funnel report from the service's database (PostgreSQL): 1M leads, ~10M
touchpoints by default.

    .venv/bin/python bench/funnel_db.py                                   # 1M demo leads
    .venv/bin/python bench/funnel_db.py --leads 100000 --database postgresql+psycopg://...

Demo data (`features.data.demo.generate`, as `bench/funnel.py` prepares it) is loaded into a schema
of its own (`funnel_bench_<pid>`, dropped at the end unless `--keep`) created by the service's
migrations, with COPY: captured leads, a `lead_source` attribute per lead, touchpoints, one
outcome per lead (the earliest), and one score-log row per lead (scores made up from the
generator's true win probability, as `bench/funnel.py` does). The load and VACUUM ANALYZE are
timed on their own lines, and so is deriving the funnel's per-lead tables from them (what
migration `0008_lead_funnel` does to an existing database; the service's writers keep them up to
date as they write); each report is then `serving.report.funnel.funnel_from_database`, the
function behind `GET /v1/reports/funnel`, end to end (SQL sums, the won deals' days fetched,
measures). A last line checks the database's total against the file report on the same frames.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.funnel import generated, made_up_scores  # noqa: E402
from bench.machine import describe_machine, peak_rss_mb  # noqa: E402
from features.report.funnel import funnel  # noqa: E402
from serving.db import make_engine, upgrade_database  # noqa: E402
from serving.report.funnel import funnel_from_database  # noqa: E402
from serving.report.funnel_tables import refresh_all  # noqa: E402

REPORTS = (
    ("channel", "first_touch"),
    ("channel", "last_touch"),
    ("channel", "linear"),
    ("campaign", "first_touch"),
    ("campaign", "linear"),
    ("week", "first_touch"),
    ("lead_source", "first_touch"),
    ("grade", "first_touch"),
    ("score_band", "first_touch"),
    ("decision", "first_touch"),
)
RECEIVED = pd.Timestamp("2026-01-01", tz="UTC")


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _copy(raw, table: str, frame: pd.DataFrame) -> None:
    """COPY a frame into `table` as CSV written by Arrow (timestamps in microseconds, UTC)."""
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
            frame[name] = frame[name].dt.as_unit("us")
    buffer = io.BytesIO()
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    columns = ", ".join(frame.columns)
    with raw.cursor() as cursor:
        with cursor.copy(
            f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)"
        ) as c:
            c.write(buffer.getvalue())


def load(engine: sa.Engine, frames: dict[str, pd.DataFrame], scores: pd.DataFrame) -> None:
    leads, touches, outcomes = frames["leads"], frames["touchpoints"], frames["outcomes"]
    n_leads, n_touches = len(leads), len(touches)
    earliest = outcomes.sort_values("closed_at", kind="stable").drop_duplicates("lead_id")
    raw = engine.raw_connection()
    try:
        _copy(raw, "captured_leads", pd.DataFrame({
            "lead_id": leads["lead_id"], "created_at": leads["created_at"],
            "received_at": RECEIVED,
        }))  # fmt: skip
        _copy(raw, "lead_attributes", pd.DataFrame({
            "lead_id": leads["lead_id"], "name": "lead_source",
            "value": '"' + leads["lead_source"].fillna("").astype(str) + '"',
            "changed_at": leads["created_at"], "received_at": RECEIVED,
            "dedup_key": np.arange(n_leads).astype(str),
        }))  # fmt: skip
        _copy(raw, "lead_touchpoints", pd.DataFrame({
            "lead_id": touches["lead_id"], "occurred_at": touches["occurred_at"],
            "channel": touches["channel"], "activity": touches["activity"],
            "campaign": touches["campaign"], "value": touches["value"],
            "received_at": RECEIVED, "dedup_key": np.arange(n_touches).astype(str),
        }))  # fmt: skip
        _copy(raw, "outcomes", pd.DataFrame({
            "lead_id": earliest["lead_id"], "won": earliest["won"],
            "closed_at": earliest["closed_at"], "amount": earliest["amount"],
            "reported_at": RECEIVED, "updated_at": RECEIVED,
        }))  # fmt: skip
        _copy(raw, "score_log", pd.DataFrame({
            "request_id": "bench", "lead_id": scores["lead_id"], "model_name": "lead-scoring",
            "model_version": "1", "policy_version": 0, "probability": scores["score"] / 100,
            "score": scores["score"].astype("int64"), "grade": scores["grade"],
            "decision": scores["decision"], "reasons": "[]",
            "scored_at": leads["created_at"] + pd.Timedelta(hours=1),
        }))  # fmt: skip
        raw.commit()
    finally:
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=1_000_000, help="demo leads to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL database (a schema of its own is created in it)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="runs per report (fastest kept)")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    args = parser.parse_args()

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {describe_machine()}")
    schema = f"funnel_bench_{os.getpid()}"
    admin = sa.create_engine(args.database)
    with admin.begin() as connection:
        version = connection.execute(sa.text("SHOW server_version")).scalar()
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    print(f"PostgreSQL {version}, schema {schema}; pandas {pd.__version__}")
    url = f"{args.database}?options=-csearch_path%3D{schema}"
    try:
        run(args, url)
    finally:
        if not args.keep:
            with admin.begin() as connection:
                connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run(args: argparse.Namespace, url: str) -> None:
    width = 34
    t0 = time.perf_counter()
    frames, oracle = generated(args.leads, args.seed)
    leads = frames["leads"]
    scores = made_up_scores(leads["lead_id"], oracle.reindex(leads["lead_id"]).to_numpy())
    generate_seconds = time.perf_counter() - t0
    print(
        f"data: {len(leads):,} leads, {len(frames['touchpoints']):,} touchpoints, "
        f"{len(frames['outcomes']):,} outcomes, {len(scores):,} scores"
    )
    print()
    print(f"{'step':<{width}}  {'groups':>6}  {'seconds':>8}  {'cpu s':>6}  load average after")
    print(f"{'-' * width}  {'-' * 6}  {'-' * 8}  {'-' * 6}  ------------------")
    print(f"{'generate demo data (in memory)':<{width}}  {'':>6}  {generate_seconds:8.2f}  "
          f"{'':>6}  {_load()}")  # fmt: skip
    upgrade_database(url)
    engine = make_engine(url)
    t0 = time.perf_counter()
    load(engine, frames, scores)
    print(f"{'COPY into PostgreSQL':<{width}}  {'':>6}  {time.perf_counter() - t0:8.2f}  "
          f"{'':>6}  {_load()}")  # fmt: skip
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE"))
    print(f"{'VACUUM ANALYZE':<{width}}  {'':>6}  {time.perf_counter() - t0:8.2f}  "
          f"{'':>6}  {_load()}")  # fmt: skip
    t0 = time.perf_counter()
    with engine.begin() as connection:  # what migration 0008 does to an existing database
        refresh_all(connection)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE lead_funnel, lead_funnel_channels, "
                                   "lead_funnel_campaigns, lead_funnel_attributes"))  # fmt: skip
    print(f"{'derive the funnel tables (backfill)':<{width}}  {'':>6}  "
          f"{time.perf_counter() - t0:8.2f}  {'':>6}  {_load()}")  # fmt: skip
    table = None
    for by, attribution in REPORTS:
        best = best_cpu = float("inf")
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            table = funnel_from_database(engine, by, attribution)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        assert table is not None
        name = f"funnel by {by}" + (f" ({attribution})" if table.attrs["attribution"] else "")
        print(f"{name:<{width}}  {len(table) - 1:>6}  {best:8.2f}  {best_cpu:6.2f}  {_load()}")
    print()
    print("cpu s: this process only (the database server's own CPU time is not in it)")
    print(f"peak memory: {peak_rss_mb() / 1024:.1f} GB (this process, the generated data included)")
    database = funnel_from_database(engine, "channel", "first_touch")
    files = funnel(leads, frames["touchpoints"], frames["outcomes"], by="channel",
                   attribution="first_touch", scores=scores)  # fmt: skip
    same = np.allclose(
        database.drop(columns="channel").to_numpy(float),
        files.drop(columns="channel").to_numpy(float),
        equal_nan=True,
    ) and list(database["channel"]) == list(files["channel"])
    total = database.iloc[-1]
    print(
        f"check: {int(total['leads']):,} leads, {int(total['won']):,} won, win rate "
        f"{total['win_rate']:.1%}; by channel (first touch) the database and the file report "
        f"{'agree' if same else 'DISAGREE'}"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
