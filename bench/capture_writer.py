"""The capture writer's cost per scored request: the interpreter time it takes from the requests.

    .venv/bin/python bench/capture_writer.py [--leads 1000] [--touches 20] [--attributes 10]
    .venv/bin/python bench/capture_writer.py --database postgresql+psycopg://postgres@127.0.0.1/test

A request of `--leads` leads, each with `--touches` touchpoints and `--attributes` attributes, is
captured three times into a fresh database: new leads, the same leads again (every fact a
duplicate, as when the CRM scores a lead again with its whole history), and other new leads.
Each line is `CaptureWriter.prepare` (rows and dedup keys) and `write` (one transaction), in wall
and CPU seconds of this process (the writer thread's share of the interpreter).

A last line is `bench/serve.py --capture`'s workload: one-lead requests (20 touchpoints each, 200
demo leads rotated, parsed by the route's own `read_body`), written in batches of 100 as the
writer thread gathers them, after every lead was written once (so every fact is a duplicate):
`--batches` batches, and the writer's CPU milliseconds per request.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe_machine  # noqa: E402


def request(first: int, leads: int, touches: int, attributes: int, now: datetime) -> list[dict]:
    rng = random.Random(first)
    return [
        {
            "lead_id": f"L-{first + i}", "created_at": now - timedelta(days=30), "as_of": now,
            "attributes": {f"field_{k}": f"value {rng.randint(0, 5)}" for k in range(attributes)},
            "touchpoints": [
                {"occurred_at": now - timedelta(hours=j), "channel": "email",
                 "activity": "email_open", "campaign": "nurture", "value": None}
                for j in range(touches)
            ],
        }
        for i in range(leads)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--touches", type=int, default=20)
    parser.add_argument("--attributes", type=int, default=10)
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: SQLite, tmp)")
    parser.add_argument("--batches", type=int, default=30, help="batches of the serve workload")
    args = parser.parse_args()

    from serving.capture.writer import CaptureWriter, Scored
    from serving.db import make_engine, upgrade_database

    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'leadscore.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    writer = CaptureWriter(engine)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    print(f"command: python bench/capture_writer.py {' '.join(sys.argv[1:])}")
    print(f"machine: {describe_machine()}")
    print(f"database: {engine.url.render_as_string(hide_password=True).split('?')[0]}")
    print(f"request: {args.leads} leads x {args.touches} touchpoints, {args.attributes} attributes")
    header = f"{'run':<20}{'prepare s':>11}{'write s':>10}{'cpu s':>8}"
    print(header + "\n" + "-" * len(header))
    for label, first in (("new leads", 0), ("same leads again", 0), ("other new leads", 10**6)):
        leads = request(first, args.leads, args.touches, args.attributes, now)
        started, cpu = time.perf_counter(), time.process_time()
        rows = writer.prepare(Scored(leads, None, now))
        prepared = time.perf_counter()
        with engine.begin() as connection:
            writer.write(connection, [rows])
        writer.committed()  # as the writer's thread does after the commit
        done = time.perf_counter()
        print(f"{label:<20}{prepared - started:>11.3f}{done - prepared:>10.3f}"
              f"{time.process_time() - cpu:>8.3f}")  # fmt: skip
    serve_workload(writer, engine, args.batches)
    engine.dispose()


def serve_workload(writer, engine, batches: int) -> None:
    """The one-lead requests of `bench/serve.py --capture`, 100 to a write."""
    from bench.serve import build_leads, leadscore_body
    from serving.capture.writer import Scored
    from serving.leads import read_body

    bodies = [leadscore_body([lead]) for lead in build_leads(200)]

    def item(i: int) -> Scored:
        parsed = read_body(bodies[i % len(bodies)])
        return Scored(parsed.leads, parsed.moments, datetime.now(UTC))

    totals = [0.0, 0.0, 0.0]
    for batch in range(-2, batches):  # two batches write every lead once first
        items = [item(batch * 100 + i) for i in range(100)]
        started, cpu = time.perf_counter(), time.process_time()
        rows = [writer.prepare(one) for one in items]
        prepared = time.perf_counter()
        with engine.begin() as connection:
            writer.write(connection, rows)
        writer.committed()
        if batch >= 0:
            done = time.perf_counter()
            for i, spent in enumerate((prepared - started, done - prepared,
                                       time.process_time() - cpu)):  # fmt: skip
                totals[i] += spent
    label = f"{batches * 100} 1-lead requests"
    print(f"{label:<20}{totals[0]:>11.3f}{totals[1]:>10.3f}{totals[2]:>8.3f}"
          f"   ({totals[2] / (batches * 100) * 1000:.3f} ms CPU a request)")  # fmt: skip


if __name__ == "__main__":
    main()
