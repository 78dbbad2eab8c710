"""The closed loop on demo data: stream the leads through the API, retrain from what the service
captured, and compare with training from the same data's files on the same holdout.

    .venv/bin/python bench/closed_loop.py                  # 3,000 demo leads
    .venv/bin/python bench/closed_loop.py --leads 10000 --search small

1. Demo data (`features.data.demo`, export date 2024-12-31) is written as Parquet and loaded
   with `load_lead_data`; a model is fitted on it (`training.train.fit_scorer`) and served by
   the real app (`serving.app.create_app`, in process, SQLite database).
2. Replay with a simulated clock (the score, events and outcomes routes' `utcnow` is the replay
   moment, so `received_at` and `scored_at` are the moments the CRM would have called): every
   lead is scored as of its creation and again at days 1, 7 and 30 while it is open and before
   the export date, each request carrying the attributes and the touchpoints that happened
   before that moment; every outcome is posted at its close.
3. Three models on the same settings and seed: from the files; `train --from-database`'s data
   (`training.database.read_lead_data`: touches counted per snapshot by receipt); and the same
   database data with late touches shifted to their arrival (`occurred_at = max(occurred_at,
   received_at)`, the alternative the reader does not use). Each is scored on the files model's
   holdout (the same rows, features from the files); ROC AUC and log loss are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe_machine, peak_rss_mb  # noqa: E402

EXPORT = pd.Timestamp("2024-12-31", tz="UTC")
AGES = (0, 1, 7, 30)  # days after creation the CRM asks for a score
KEY = "ls_bench-scorer-key-0123456789abcdef"


class Clock:
    """The replay's moment, standing in for `utcnow` in the routes."""

    def __init__(self) -> None:
        self.now = datetime(2000, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _value(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def replay_plan(files) -> list[tuple[pd.Timestamp, str, object]]:
    """(moment, "score" | "outcome", payload) for every call the CRM makes, in time order."""
    names = [c for c in files.leads.columns if c not in ("lead_id", "created_at")]
    closed = files.outcomes.set_index("lead_id")["closed_at"]
    touches = {k: g.sort_values("occurred_at") for k, g in files.touchpoints.groupby("lead_id")}
    plan = []
    for lead in files.leads.to_dict("records"):
        created = lead["created_at"]
        end = min(EXPORT, closed.get(lead["lead_id"], EXPORT))
        attributes = {name: _value(lead[name]) for name in names}
        mine = touches.get(lead["lead_id"])
        for age in AGES:
            moment = created + pd.Timedelta(days=age)
            if moment >= end:
                break
            known = mine[mine["occurred_at"] < moment] if mine is not None else mine
            record = {
                "lead_id": lead["lead_id"], "created_at": created.isoformat(),
                "as_of": moment.isoformat(), "attributes": attributes,
                "touchpoints": [] if known is None else [
                    {"occurred_at": t.occurred_at.isoformat(), "channel": t.channel,
                     "activity": t.activity, "campaign": _value(t.campaign),
                     "value": _value(t.value)}
                    for t in known.itertuples()
                ],
            }  # fmt: skip
            plan.append((moment, "score", record))
    for row in files.outcomes.to_dict("records"):
        if row["closed_at"] <= EXPORT:
            outcome = {"lead_id": row["lead_id"], "outcome": "won" if row["won"] else "lost",
                       "closed_at": row["closed_at"].isoformat(),
                       "amount": _value(row["amount"])}  # fmt: skip
            plan.append((row["closed_at"], "outcome", outcome))
    plan.sort(key=lambda item: (item[0], item[1]))
    return plan


def stream(plan, app_settings, scorer) -> dict[str, float]:
    from fastapi.testclient import TestClient

    import serving.routes.events as events_route
    import serving.routes.outcomes as outcomes_route
    import serving.routes.score as score_route
    from serving.app import create_app
    from serving.model_store import LoadedModel, ModelStore

    def loader(uri: str, tracking_uri: str) -> LoadedModel:
        return LoadedModel(scorer=scorer, name="lead-scoring", version="files", alias=None, uri=uri)

    store = ModelStore("models:/lead-scoring/1", "sqlite://", loader=loader)
    clock = Clock()
    saved = {m: m.utcnow for m in (score_route, outcomes_route, events_route)}
    for module in saved:
        module.utcnow = clock  # type: ignore[assignment]
    headers = {"Authorization": f"Bearer {KEY}"}
    counts = {"score requests": 0, "outcome requests": 0}
    started = time.perf_counter()
    try:
        with TestClient(create_app(app_settings, model_store=store)) as client:
            for moment, kind, payload in plan:
                clock.now = moment.to_pydatetime()
                if kind == "score":
                    response = client.post("/v1/score", json={"leads": [payload]}, headers=headers)
                else:
                    response = client.post(
                        "/v1/outcomes", json={"outcomes": [payload]}, headers=headers
                    )
                if response.status_code != 200:
                    raise SystemExit(f"{kind} at {moment}: {response.status_code} {response.text}")
                counts[f"{kind} requests"] += 1
            services = client.app.state.services
            services.capture.writer.flush()
            while services.score_log.pending:
                time.sleep(0.05)
    finally:
        for module, original in saved.items():
            module.utcnow = original  # type: ignore[assignment]
    counts["seconds"] = time.perf_counter() - started
    return counts


def shifted(data):
    """The database data with late touches moved to their arrival (the alternative rule)."""
    touches = data.touchpoints.copy()
    arrival = touches["received_at"] - pd.Timedelta(1, "ns")  # received at T: known at T
    touches["occurred_at"] = touches["occurred_at"].where(
        touches["occurred_at"] >= arrival, arrival
    )
    return type(data)(
        data.leads, touches.drop(columns="received_at"), data.outcomes, data.label,
        data.attribute_types, data.report, data.attribute_history,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--search", default="none", help="candidate grid (none, tiny, small)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import sqlalchemy as sa

    from features.data import demo
    from features.data.config import DataConfig
    from features.data.loading import load_lead_data
    from serving.config import Settings
    from serving.db import (
        captured_leads,
        lead_attributes,
        lead_touchpoints,
        make_engine,
        upgrade_database,
    )
    from training.database import database_config, read_lead_data
    from training.evaluate import classification_metrics
    from training.train import RunConfig, TrainingConfig, fit_scorer, resolve_config

    print(f"command: python bench/closed_loop.py {' '.join(sys.argv[1:])}")
    print(f"machine: {describe_machine()}")
    root = Path(tempfile.mkdtemp(prefix="closed-loop-"))
    demo.write(demo.generate(args.leads, seed=args.seed), root, formats=("parquet",))
    config = DataConfig(leads=root / "leads.parquet", touchpoints=root / "touchpoints.parquet",
                        outcomes=root / "outcomes.parquet")  # fmt: skip
    files = load_lead_data(config)
    run: RunConfig = resolve_config(None, leads=config.leads.path)
    run.data = config
    run.training = TrainingConfig(search=args.search, cv_folds=1 if args.search == "none" else 3,
                                  splines=False, now=EXPORT.to_pydatetime())  # fmt: skip

    rows = []
    started = time.perf_counter()
    by_files = fit_scorer(files, run, args.seed)
    rows.append(("files", by_files, time.perf_counter() - started))

    url = f"sqlite:///{root / 'leadscore.db'}"
    upgrade_database(url)
    settings = Settings(database_url=url, api_keys_bootstrap=f"bench:scorer:{KEY}",
                        capture_retention_days=0, score_log_flush_seconds=0.05)  # fmt: skip
    plan = replay_plan(files)
    streamed = stream(plan, settings, by_files.scorer)
    engine = make_engine(url)
    with engine.connect() as connection:
        held = {
            t.name: connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (captured_leads, lead_attributes, lead_touchpoints)
        }
    engine.dispose()

    started = time.perf_counter()
    from_db = read_lead_data(url, database_config(), as_of=EXPORT.to_pydatetime())
    read_seconds = time.perf_counter() - started
    for name, data in (("database (receipt filter)", from_db), ("database (shift to arrival)",
                                                                shifted(from_db))):  # fmt: skip
        started = time.perf_counter()
        rows.append((name, fit_scorer(data, run, args.seed), time.perf_counter() - started))

    holdout = by_files.holdout_frame
    labels = by_files.holdout_labels
    print(
        f"data: {args.leads:,} demo leads, {len(files.touchpoints):,} touchpoints, "
        f"{len(files.outcomes):,} outcomes; search={args.search}, seed={args.seed}, "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    )
    print(
        f"replay through the API: {streamed['score requests']:,.0f} score requests, "
        f"{streamed['outcome requests']:,.0f} outcome requests in {streamed['seconds']:.1f} s "
        f"({(streamed['score requests'] + streamed['outcome requests']) / streamed['seconds']:.0f}"
        f" requests/s, in process); captured rows: {held}"
    )
    print(f"read the database back (read_lead_data): {read_seconds:.1f} s")
    print(f"holdout: the files model's, {len(labels):,} snapshots, {int(labels.sum())} won\n")
    header = f"{'trained from':<30}{'examples':>10}{'ROC AUC':>10}{'vs files':>10}{'log loss':>10}{'fit s':>8}"
    print(header)
    print("-" * len(header))
    base = None
    for name, fitted, seconds in rows:
        p = fitted.scorer.estimator.predict_proba(
            fitted.scorer.featurizer.transform(holdout, files.touchpoints)
        )
        m = classification_metrics(labels, np.asarray(p), run.policy)
        base = m["roc_auc"] if base is None else base
        print(
            f"{name:<30}{len(fitted.examples.labels):>10,}{m['roc_auc']:>10.4f}"
            f"{m['roc_auc'] - base:>+10.4f}{m['log_loss']:>10.4f}{seconds:>8.1f}"
        )
    print(f"\npeak memory: {peak_rss_mb():.0f} MB; load average after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip


if __name__ == "__main__":
    main()
