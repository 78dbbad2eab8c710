"""What the parts beyond the win probability cost on the API's scoring path, in one process.

    .venv/bin/python bench/score_parts.py --tracking-uri sqlite:///mlflow.db
                                          [--model-uri models:/lead-scoring@champion]
                                          [--demo-dir demo-data] [--repeats 300]

Loads the model, builds API records from the demo data's leads (with their touchpoints), and
times `LeadScorer.score_columns` (what `POST /v1/score` calls, on the leads as the route's
`read_body` validated them: moments as datetimes, touchpoint moments parsed) for 1 lead and 100 leads, with
reasons: the full model (fit and engagement, confidence, deal value, time to close, segments when
trained) against the same scorer with each part taken away in turn, and the win model alone (the
anchor). Prints the machine, the command, the load average and a table of median microseconds
per call and the ratio to the anchor. Numbers are noisy when other work shares the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARTS = ("subscores", "confidence", "value", "timing", "segments")


def records(demo_dir: Path, n: int) -> list[dict]:
    import pandas as pd

    leads = pd.read_parquet(demo_dir / "leads.parquet").head(n)
    touches = pd.read_parquet(demo_dir / "touchpoints.parquet")
    touches = touches[touches["lead_id"].isin(leads["lead_id"])]
    by_lead = {k: g for k, g in touches.groupby("lead_id")}
    out = []
    for lead in leads.to_dict("records"):
        mine = by_lead.get(lead["lead_id"])
        out.append({
            "lead_id": lead["lead_id"],
            "created_at": lead["created_at"].isoformat(),
            "as_of": "2025-01-15T00:00:00Z",
            "attributes": {k: (None if pd.isna(v) else str(v)) for k, v in lead.items()
                           if k not in ("lead_id", "created_at")},
            "touchpoints": [] if mine is None else [
                {"occurred_at": t.occurred_at.isoformat(), "channel": "other",
                 "activity": "visit", "campaign": None, "value": None}
                for t in mine.itertuples()
            ],
        })  # fmt: skip
    return out


def as_validated(leads: list[dict]):
    """The leads as the route hands them to the scorer: validated by `read_body` (moments as
    datetimes, touchpoint moments parsed once)."""
    import orjson

    from serving.leads import read_body

    return read_body(orjson.dumps({"leads": leads}))


def timed(scorer, leads: list[dict], repeats: int) -> float:
    parsed = as_validated(leads)
    valid, moments = parsed.leads, parsed.moments

    def score() -> None:
        scorer.score_columns(valid, touch_moments=moments)

    score()  # warm caches
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        score()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model-uri", default="models:/lead-scoring@champion")
    parser.add_argument("--demo-dir", default="demo-data")
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()

    from bench.machine import describe_machine
    from features.model.artifact import load_model_scorer

    machine = describe_machine()
    scorer = load_model_scorer(args.model_uri, args.tracking_uri)
    present = [p for p in PARTS if getattr(scorer, p) is not None]
    saved = {p: getattr(scorer, p) for p in PARTS}
    many = records(Path(args.demo_dir), 100)
    rows = []
    # the confidence grid reads the fit and engagement: they go together
    variants = [("full model", ())] + [
        (f"without {p}", (p, "confidence") if p == "subscores" else (p,)) for p in present
    ]
    variants.append(("win model alone (anchor)", tuple(present)))
    for label, removed in variants:
        for part in PARTS:
            setattr(scorer, part, None if part in removed else saved[part])
        one = timed(scorer, many[:1], args.repeats)
        hundred = timed(scorer, many, max(10, args.repeats // 10))
        rows.append((label, one, hundred))
    anchor = rows[-1]
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {machine}")
    print(f"model: {args.model_uri}; parts: {', '.join(present) or 'none'}")
    print()
    print("| scorer | 1 lead (us) | ratio | 100 leads (us) | ratio |")
    print("|---|---|---|---|---|")
    for label, one, hundred in rows:
        print(f"| {label} | {one:,.0f} | {one / anchor[1]:.2f} | {hundred:,.0f} | "
              f"{hundred / anchor[2]:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
