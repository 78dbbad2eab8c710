"""A funnel report as JSON, CSV or a plain table for terminals (strings; the CLI writes them)."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from features.report.measures import MEASURE_NAMES, MEASURES, TOTAL


def to_records(frame: pd.DataFrame) -> dict[str, Any]:
    """The report as JSON-ready data: what it is grouped by, the rows, the total, the measures."""
    by = frame.columns[0]
    records = [
        {by: row[by], **{name: _plain(row[name]) for name in MEASURE_NAMES}}
        for row in frame.to_dict("records")
    ]
    is_total = [r[by] == TOTAL for r in records]
    return {
        "report": frame.attrs.get("report", "funnel"),
        "by": by,
        "attribution": frame.attrs.get("attribution"),
        "from": frame.attrs.get("start"),
        "to": frame.attrs.get("end"),
        "rows": [r for r, total in zip(records, is_total) if not total],
        "total": next((r for r, total in zip(records, is_total) if total), None),
        "exploration": _exploration_record(frame.attrs.get("exploration")),
        "measures": [
            {"name": m.name, "unit": m.unit, "description": m.description} for m in MEASURES
        ],
    }


def _exploration_record(figures: dict[str, Any] | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {name: _plain(value) for name, value in figures.items()}


def to_json(frame: pd.DataFrame) -> str:
    return json.dumps(to_records(frame), indent=2, allow_nan=False) + "\n"


def to_csv(frame: pd.DataFrame) -> str:
    """One row per group, then the '(total)' row; empty cells where a measure has no value.
    (The exploration estimate is no group: it is in the JSON and the table only.)"""
    text: str = frame.round(6).to_csv(index=False, lineterminator="\n")
    return text


def to_table(frame: pd.DataFrame) -> str:
    """An aligned plain-text table with a title and notes on how to read it."""
    by = frame.columns[0]
    attribution = frame.attrs.get("attribution")
    fractional = attribution == "linear"
    show_sent = not frame["sent_to_sales"].isna().all()

    def count(value: Any) -> str:
        if _missing(value):
            return "-"
        return f"{value:,.1f}" if fractional else f"{int(round(value)):,}"

    columns: list[tuple[str, Any]] = [
        (by, lambda r: str(r[by])),
        ("leads", lambda r: count(r["leads"])),
    ]
    if show_sent:
        columns.append(("to sales", lambda r: count(r["sent_to_sales"])))
    columns += [
        ("won", lambda r: count(r["won"])),
        ("lost", lambda r: count(r["lost"])),
        ("open", lambda r: count(r["open"])),
        ("win rate", lambda r: _percent(r["win_rate"])),
        ("95% CI", lambda r: _interval(r["win_rate_low"], r["win_rate_high"])),
        ("revenue won", lambda r: _money(r["revenue_won"])),
        ("avg deal", lambda r: _money(r["average_deal"])),
        ("median days", lambda r: _days(r["median_days_to_close"])),
        ("p75 days", lambda r: _days(r["p75_days_to_close"])),
    ]
    rows = frame.to_dict("records")
    cells = [[render(row) for _, render in columns] for row in rows]
    headers = [name for name, _ in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [v.rjust(w) for v, w in zip(values[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(c) for row, c in zip(rows, cells) if row[by] != TOTAL]
    totals = [line(c) for row, c in zip(rows, cells) if row[by] == TOTAL]
    out = [_title(frame), "", line(headers), rule, *body]
    if totals:
        out += [rule, *totals]
    out += ["", *_notes(frame, fractional)]
    out += _exploration_lines(frame.attrs.get("exploration"))
    return "\n".join(out) + "\n"


def _exploration_lines(figures: dict[str, Any] | None) -> list[str]:
    """What the threshold misses, in two sentences below the table."""
    if figures is None:
        return []
    held, explored = figures["held_back"], figures["explored"]
    lines = [
        "",
        f"What the threshold misses: {held:,} lead(s) held back "
        f"({figures['held_back_per_week']:,.1f} a week over {figures['weeks']:,.1f} weeks), "
        f"{explored:,} of them sent to sales by exploration: {figures['explored_won']:,} won, "
        f"{figures['explored_lost']:,} lost, {figures['explored_open']:,} open.",
    ]
    if figures["win_rate"] is None:
        lines.append("No explored lead has closed yet: no estimate of the wins forgone.")
    else:
        lines.append(
            f"Explored win rate {_percent(figures['win_rate'])} "
            f"(95% CI {_interval(figures['win_rate_low'], figures['win_rate_high'])}): the "
            f"threshold forgoes about {figures['forgone_wins_per_week']:,.1f} wins a week "
            f"({figures['forgone_wins_per_week_low']:,.1f}-"
            f"{figures['forgone_wins_per_week_high']:,.1f})."
        )
    return lines


def _title(frame: pd.DataFrame) -> str:
    by = frame.columns[0]
    attribution = frame.attrs.get("attribution")
    how = f" ({attribution.replace('_', ' ')} attribution)" if attribution else ""
    start, end = frame.attrs.get("start"), frame.attrs.get("end")
    period = "all leads"
    if start or end:
        period = "leads created"
        if start:
            period += f" from {_day(start, last=False)}"
        if end:
            period += f" to {_day(end, last=True)}"
    return f"Funnel by {by}{how}, {period}"


def _day(moment: str, *, last: bool) -> str:
    """A bound as a day when it is midnight UTC (an end bound: the day before, inclusive)."""
    stamp = pd.Timestamp(moment)
    if stamp.tz_convert("UTC") != stamp.tz_convert("UTC").normalize():
        return moment if not last else f"before {moment}"
    if last:
        stamp -= pd.Timedelta(days=1)
    return str(stamp.tz_convert("UTC").date())


def _notes(frame: pd.DataFrame, fractional: bool) -> list[str]:
    notes = [
        "win rate = won / (won + lost), with its Wilson 95% confidence interval; days = lead "
        "creation to the close of won deals"
    ]
    if fractional:
        notes.append(
            "linear attribution: each touchpoint up to the close gets an equal share of its "
            "lead, so counts and revenue are fractional credits"
        )
    total = frame[frame.iloc[:, 0] == TOTAL]
    if len(total):
        won = float(total["won"].iloc[0])
        with_amount = float(total["won_with_amount"].iloc[0])
        if won - with_amount > 1e-9:
            notes.append(
                f"{won - with_amount:,.0f} won deal(s) without an amount are left out of revenue "
                "and average deal"
            )
    return notes


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _percent(value: Any) -> str:
    return "-" if _missing(value) else f"{100 * value:.1f}%"


def _interval(low: Any, high: Any) -> str:
    if _missing(low) or _missing(high):
        return "-"
    return f"{100 * low:.1f}-{100 * high:.1f}%"


def _money(value: Any) -> str:
    return "-" if _missing(value) else f"{value:,.0f}"


def _days(value: Any) -> str:
    return "-" if _missing(value) else f"{value:.1f}"


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, NaN as None (JSON null)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
