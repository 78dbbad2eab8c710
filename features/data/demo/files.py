"""Writing the demo tables: Parquet and/or CSV, plus oracle.parquet; what `leadscore demo-data` runs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.data.demo.dataset import STEPS, DemoData, generate

TABLES = ("leads", "touchpoints", "outcomes")


def progress_steps(formats: tuple[str, ...]) -> int:
    """How many times `create_demo_data` calls `progress`: a progress bar's total."""
    return len(STEPS) + len(_files(formats))


def _files(formats: tuple[str, ...]) -> list[tuple[str, str]]:
    """(table, format) of every file `write` writes, in order."""
    files = [(name, f) for name in TABLES for f in ("parquet", "csv") if f in formats]
    return [*files, ("oracle", "parquet")]


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns decoded to plain strings, timestamps as '2024-03-01 09:30:00Z' text
    (formatting zone-aware timestamps in the CSV writer is ten times slower)."""
    columns = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        elif pa.types.is_timestamp(column.type):
            text = pc.cast(pc.cast(column, pa.timestamp("s")), pa.string())
            column = pc.binary_join_element_wise(text, pa.scalar("Z"), "")
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def write(
    data: DemoData,
    out: str | Path,
    formats: tuple[str, ...] = ("parquet", "csv"),
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write leads, touchpoints, outcomes in each format, and oracle.parquet; the paths written."""
    step = progress or (lambda description: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[Path, Callable[[], None]]] = []
    for name, file_format in _files(formats):
        table, path = getattr(data, name), out / f"{name}.{file_format}"
        if file_format == "parquet":
            jobs.append((path, partial(pq.write_table, table, path, compression="zstd")))
        else:
            jobs.append((path, partial(_write_csv, table, path)))
    # Arrow releases the GIL while encoding, so the CSV and Parquet writers overlap.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {pool.submit(job): path for path, job in jobs}
        for future in as_completed(futures):
            future.result()
            step(f"wrote {futures[future].name}")
    return [path for path, _ in jobs]


def _write_csv(table: pa.Table, path: Path) -> None:
    pacsv.write_csv(_plain(table), path)


@dataclass
class DemoSummary:
    """What `create_demo_data` wrote."""

    out: Path
    files: list[Path]
    leads: int
    touchpoints: int
    outcomes: int
    wins: int
    mean_true_probability: float
    export_date: str
    shape: str = "default"


def create_demo_data(
    out: str | Path,
    n_leads: int,
    seed: int = 0,
    formats: tuple[str, ...] = ("parquet", "csv"),
    progress: Callable[[str], None] | None = None,
    shape: str = "default",
) -> DemoSummary:
    """Generate and write the demo tables of a shape (`process.SHAPES`); what `leadscore
    demo-data` runs."""
    data = generate(n_leads, seed=seed, progress=progress, shape=shape)
    files = write(data, out, formats=formats, progress=progress)
    return DemoSummary(
        out=Path(out),
        files=files,
        leads=data.leads.num_rows,
        touchpoints=data.touchpoints.num_rows,
        outcomes=data.outcomes.num_rows,
        wins=int(pc.sum(data.outcomes["won"]).as_py() or 0),
        mean_true_probability=float(pc.mean(data.oracle["true_win_probability"]).as_py()),
        export_date=str(data.export_date.astype("datetime64[D]")),
        shape=shape,
    )
