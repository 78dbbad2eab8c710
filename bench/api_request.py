"""In-process cost of one POST /v1/score of 1,000 valid leads: body validation, the checks around
it, scoring and the answer (FastAPI TestClient, no network), as a table: wall time and the CPU
time of the process (all its threads; less skewed by other work on a busy machine).

    python bench/api_request.py --tracking-uri sqlite:///mlflow.db --model-uri models:/lead-scoring/1 \
        --demo-dir demo-data --repeat 40

The leads come from the demo files (touchpoint spellings the vocabulary does not know are sent as
'other', so every version of the API accepts the body). Run it for two checkouts alternately
(PYTHONPATH=...) on the same machine to compare them; other work on the machine skews the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe_machine  # noqa: E402

KEY = "ls_bench-scorer-key-0123456789abcdef"


def records(demo_dir: Path, n: int) -> list[dict]:
    import pyarrow.parquet as pq

    from features.data.vocabulary import lookup_activity, lookup_channel

    leads = pq.read_table(demo_dir / "leads.parquet").slice(0, n).to_pylist()
    touches = pq.read_table(demo_dir / "touchpoints.parquet").to_pylist()
    by_lead: dict[str, list[dict]] = {}
    for t in touches:
        by_lead.setdefault(t["lead_id"], []).append(t)
    out = []
    for lead in leads:
        out.append(
            {
                "lead_id": lead["lead_id"],
                "created_at": lead["created_at"].isoformat(),
                "as_of": "2025-06-01T00:00:00+00:00",
                "attributes": {k: v for k, v in lead.items() if k not in ("lead_id", "created_at")},
                "touchpoints": [
                    {
                        "occurred_at": t["occurred_at"].isoformat(),
                        "channel": t["channel"] if lookup_channel(t["channel"]) else "other",
                        "activity": t["activity"] if lookup_activity(t["activity"]) else "other",
                        "campaign": t["campaign"],
                        "value": t["value"],
                    }
                    for t in by_lead.get(lead["lead_id"], [])
                ],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--demo-dir", type=Path, required=True)
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import orjson
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.config import Settings

    body = orjson.dumps({"leads": records(args.demo_dir, args.leads)})
    touches = body.count(b'"occurred_at"')
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            mlflow_tracking_uri=args.tracking_uri,
            model_uri=args.model_uri,
            api_keys_bootstrap=f"bench:scorer:{KEY}",
        )
        headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
        with TestClient(create_app(settings)) as client:
            # the model loads in the background: wait for it (readiness), up to 5 minutes
            deadline = time.monotonic() + 300
            while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            for _ in range(3):  # warm-up
                answer = client.post("/v1/score", content=body, headers=headers)
                assert answer.status_code == 200, answer.text[:500]
            times, cpu = [], []
            for _ in range(args.repeat):
                start, start_cpu = time.perf_counter(), time.process_time()
                answer = client.post("/v1/score", content=body, headers=headers)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
                assert answer.status_code == 200
    times.sort()
    cpu.sort()
    print(f"command: {' '.join(sys.argv)}")
    print(f"code: {os.environ.get('PYTHONPATH') or Path(__file__).resolve().parent.parent}")
    print(f"machine: {describe_machine()}")
    print(f"body: {args.leads} leads, {touches} touchpoints, {len(body) / 1e6:.2f} MB")
    print("| requests | wall median | wall min | CPU median | CPU min |")
    print("|---|---|---|---|---|")
    print(
        f"| {len(times)} | {statistics.median(times) * 1e3:.1f} ms | {times[0] * 1e3:.1f} ms "
        f"| {statistics.median(cpu) * 1e3:.1f} ms | {cpu[0] * 1e3:.1f} ms |"
    )


if __name__ == "__main__":
    main()
