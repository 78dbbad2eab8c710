"""The funnel report from the service's own database (`GET /v1/reports/funnel`).

The same report as `leadscore report funnel` on CRM files (`features.report.funnel`), from what
the service captured (`captured_leads`, `lead_attributes`, `lead_touchpoints`), the outcomes
(`outcomes`) and the score log (a lead's latest score). The database adds up the credited sums
per group with SQLAlchemy Core (the same statements on SQLite and PostgreSQL); Python then gets
one row per group and one row per won deal (its days to close, for the percentiles) and finishes
with `features.report.funnel.measures`, the file report's own code. So the two reports share one
definition of every measure, row order and total.

How the database maps onto the file report's rules
- A lead is a captured lead (`captured_leads`), selected by `created_at` (`from` included, `to`
  excluded). Its outcome is its one row of `outcomes`; its latest score is its score-log row with
  the latest `scored_at` (ties: the row written last).
- A touchpoint counts for attribution when it happened at or before the lead's close (open leads:
  every touch); ties on `occurred_at` go to the touch stored first (first touch) or last (last
  touch), as the file report's "listed first / last".
- An attribute's value is the lead's latest (by `changed_at`, then the row stored last).
- A channel or campaign report lists every value of the captured touchpoints, with 0 leads where
  none was credited (the file report lists every value of its touchpoints file).

One statement a report (UNION ALL of the sums per group, the won deals' days per group, the
total's sums and the total's days) over the funnel's per-lead tables
(`serving.report.funnel_tables`).

Percentiles: the file report's weighted quantile (each won deal a point weighted by its credit,
numpy's "hazen" positions when weights are equal) over the won deals' days. PostgreSQL sends
each group's deals as one text of (days, weight) pairs that numpy reads (~700,000 deals of a
linear report on 1M leads: a row each through the driver took seconds); SQLite a row per deal. PostgreSQL's `percentile_cont` is a different quantile (the p75 of 10, 20,
30, 40 days is 32.5 there and 35 in the file report) and knows no weights, so it is not used:
files and the database must agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement

from features.report.exploration import funnel_weeks
from features.report.funnel import (
    DAY_NS,
    DECISIONS,
    GRADES,
    FunnelError,
    GroupSums,
    attribute_groups,
    exploration_figures,
    iso_moment,
    known_value_groups,
    moment_bound,
    report_frame,
    score_band_groups,
    week_groups,
)
from features.report.measures import (
    ATTRIBUTION_NAMES,
    GROUPING_NAMES,
    MEASURE_NAMES,
    MISSING,
    NO_CAMPAIGN,
    NO_TOUCHPOINTS,
    TOTAL,
)
from serving.db import lead_funnel, lead_funnel_attributes, lead_touchpoints
from serving.report.funnel_tables import CREDITS

_NAT = np.iinfo(np.int64).min
# What a touch-level group key is: a value, no value (campaign-less touch), or no touch at all.
_VALUE, _NO_VALUE, _NO_TOUCH = 0, 1, 2
WORK_MEM = "64MB"
_SUMS = ("leads", "sent", "won", "lost", "with_amount", "revenue")


def check_request(by: str, attribution: str, start: Any, end: Any) -> tuple[int | None, int | None]:
    """The bounds as UTC nanoseconds; FunnelError naming `attribution`, `from` or `to`."""
    for option, value in (("by", by), ("from", start), ("to", end)):
        if (
            isinstance(value, str) and "\x00" in value
        ):  # no database stores it, PostgreSQL refuses it
            raise FunnelError(option, "contains a NUL character (\\u0000); remove it")
    if attribution not in ATTRIBUTION_NAMES:
        raise FunnelError(
            "attribution",
            f"{attribution!r} is not an attribution rule; accepted: {', '.join(ATTRIBUTION_NAMES)}",
        )
    lo = moment_bound(start, "from")
    hi = moment_bound(end, "to")
    if lo is not None and hi is not None and lo >= hi:
        raise FunnelError("to", f"to ({iso_moment(hi)}) must be after from ({iso_moment(lo)})")
    return lo, hi


def funnel_from_database(
    engine: Engine,
    by: str = "channel",
    attribution: str = "first_touch",
    start: Any = None,
    end: Any = None,
) -> pd.DataFrame:
    """The funnel report of the captured leads created in [start, end): the frame that
    `features.report.funnel.funnel` returns for the same data as files (same columns, rows,
    order and `attrs`). Raises FunnelError naming `by`, `attribution`, `from` or `to`."""
    lo, hi = check_request(by, attribution, start, end)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # The grouped passes over the score log and touchpoints sort and hash in memory, not
            # on disk (PostgreSQL's default is 4 MB); for this transaction only.
            connection.execute(sa.text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
            # The won deals' days come as text: the shortest text that reads back the same float
            # (PostgreSQL 12 and later with any positive setting; 17 digits before).
            connection.execute(sa.text("SET LOCAL extra_float_digits = 3"))
            # Compiling this statement's ~70 expressions (JIT, on by default above a cost this
            # report reaches near 1M leads) took 0.2 s plain and 3.5 s with inlining and
            # optimisation, in each parallel worker: more than it saves on these scans.
            connection.execute(sa.text("SET LOCAL jit = off"))
        grouping = _check_by(connection, by)
        dialect = connection.dialect.name
        facts = _facts(dialect, lo, hi, grouping, by)
        touch_level = grouping in ("channel", "campaign")
        if touch_level and attribution == "linear":
            groups, deals = _linear_parts(dialect, _credit_facts(dialect, lo, hi, grouping))
        elif touch_level:
            groups, deals = _touch_parts(dialect, facts, grouping, attribution)
        else:
            groups, deals = _lead_parts(dialect, facts, grouping)
        linear = touch_level and attribution == "linear"
        # Linear credit spreads a lead over groups: its total is summed apart; otherwise each lead
        # is in one group, and the total is the groups' sum.
        totals = _total_parts(dialect, facts) if linear else []
        statement = sa.union_all(*groups, *deals, _exploration_part(dialect, facts), *totals)
        parts = _frame(connection, statement)
        values = _touch_values(connection, grouping) if touch_level else None
    part = parts["part"].to_numpy(dtype=np.int64)
    table, deal_rows = parts[part == _GROUPS], _won_deals(dialect, parts[part == _DEALS])
    if values is not None:
        rows = _touch_sums(table, deal_rows, grouping, attribution, values)
    else:
        rows = _lead_sums(table, deal_rows, grouping, lo, hi)
    if linear:
        total = _total_sums(parts[part == _TOTAL], _won_deals(dialect, parts[part == _TOTAL_DEALS]))
    else:
        total = _total_sums(table, deal_rows)
    frame = report_frame(by, rows, total, touch_level)
    frame.attrs.update(
        report="funnel",
        by=by,
        attribution=attribution if touch_level else None,
        start=None if lo is None else iso_moment(lo),
        end=None if hi is None else iso_moment(hi),
        exploration=_exploration(parts[part == _EXPLORATION], lo, hi),
    )
    return frame


def _exploration_part(dialect: str, facts: Any) -> Any:
    """What the exploration estimate counts of the selected leads, in the statement's columns:
    held back (latest decision nurture, or exploration), explored, explored won and lost; the
    first and last creation (epoch seconds) in `days` and `weight`."""
    explored = facts.c.exploration.is_(sa.true())
    held = sa.or_(facts.c.decision == "nurture", explored)

    def count(condition: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    empty = sa.cast(sa.null(), sa.Float)
    counts = [count(held), count(explored), count(sa.and_(explored, facts.c.won == 1)),
              count(sa.and_(explored, facts.c.lost == 1)), empty, empty]  # fmt: skip
    first = _epoch_seconds(dialect, sa.func.min(facts.c.created_at))
    last = _epoch_seconds(dialect, sa.func.max(facts.c.created_at))
    return sa.select(*_part(_EXPLORATION, None, None, counts, first, last))


def _epoch_seconds(dialect: str, moment: Any) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return sa.cast(sa.extract("epoch", moment), sa.Float)
    return (sa.func.julianday(moment) - 2440587.5) * 86400.0


def _exploration(row: pd.DataFrame, lo: int | None, hi: int | None) -> dict[str, Any] | None:
    """The funnel's `exploration` figures from the statement's exploration part."""
    (held, explored, won, lost, first, last) = (
        _float(row[name])[0] for name in ("leads", "sent", "won", "lost", "days", "weight")
    )

    def ns(seconds: float) -> int | None:
        return None if np.isnan(seconds) else int(round(seconds * 1e6)) * 1000

    weeks = funnel_weeks(lo, hi, ns(first), ns(last))
    if weeks is None:
        return None
    return exploration_figures(int(held), int(explored), int(won), int(lost), weeks)


# --------------------------------------------------------------------------------------------------
# Checks


def _check_by(connection: Connection, by: str) -> str:
    """The grouping's name, or "attribute" for a captured attribute; FunnelError otherwise."""
    if by in GROUPING_NAMES:
        return by
    if by not in MEASURE_NAMES:
        found = connection.execute(
            sa.select(lead_funnel_attributes.c.name)
            .where(lead_funnel_attributes.c.name == by)
            .limit(1)
        ).first()
        if found is not None:
            return "attribute"
    names = list(
        connection.execute(
            sa.select(lead_funnel_attributes.c.name)
            .distinct()
            .order_by(lead_funnel_attributes.c.name)
            .limit(31)
        ).scalars()
    )
    listed = ", ".join(repr(n) for n in names[:30]) or "none captured yet"
    more = " (and more)" if len(names) > 30 else ""
    reason = (
        f"{by!r} is a measure name, not a way to group"
        if by in MEASURE_NAMES
        else f"{by!r} is neither a grouping nor a captured lead attribute"
    )
    raise FunnelError(
        "by",
        f"{reason}; accepted: {', '.join(GROUPING_NAMES)}, or a lead attribute: {listed}{more}",
    )


# --------------------------------------------------------------------------------------------------
# One row per selected lead: its outcome, amount, days to close, latest score (and attribute)


def _days_to_close(dialect: str, closed: Any, created: Any) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return sa.extract("epoch", closed - created) / 86400.0
    # SQLite: julianday counts whole milliseconds; rounding there drops its float noise.
    span = sa.func.julianday(closed) - sa.func.julianday(created)
    return sa.func.round(span * 86_400_000.0) / 86_400_000.0


def _epoch_day(dialect: str, moment: Any) -> ColumnElement[Any]:
    """Whole days since 1970-01-01 (UTC) of a moment after 1970."""
    if dialect == "postgresql":
        return sa.cast(sa.func.floor(sa.extract("epoch", moment) / 86400), sa.BigInteger)
    return sa.cast(sa.func.julianday(moment) - 2440587.5, sa.Integer)


def _fact_columns(dialect: str, table: sa.Table, sent: Any) -> list[Any]:
    """A lead's facts as the sums need them, from a table holding created_at, won, closed_at and
    amount (`lead_funnel`, or a credit table's copy)."""
    t = table
    won = t.c.won.is_(sa.true())
    has_amount = sa.and_(won, t.c.amount.is_not(None))
    return [
        t.c.lead_id,
        t.c.created_at,
        t.c.closed_at,
        sa.case((won, 1), else_=0).label("won"),
        sa.case((t.c.won.is_(sa.false()), 1), else_=0).label("lost"),
        sa.case((has_amount, 1), else_=0).label("with_amount"),
        sa.case((has_amount, t.c.amount), else_=0.0).label("revenue"),
        sa.case((sent, 1), else_=0).label("sent"),
        sa.case(
            (
                sa.and_(won, t.c.created_at.is_not(None)),
                _days_to_close(dialect, t.c.closed_at, t.c.created_at),
            ),
            else_=None,
        ).label("days"),  # fmt: skip
    ]


def _selected(query: Any, table: sa.Table, lo: int | None, hi: int | None) -> Any:
    """Captured leads created in [lo, hi)."""
    query = query.where(table.c.captured.is_(sa.true()))
    if lo is not None:
        query = query.where(table.c.created_at >= pd.Timestamp(lo, tz="UTC").to_pydatetime())
    if hi is not None:
        query = query.where(table.c.created_at < pd.Timestamp(hi, tz="UTC").to_pydatetime())
    return query


def _cte(query: Any, name: str, dialect: str) -> Any:
    cte = query.cte(name)
    if dialect == "postgresql":
        # Each part scans the narrow table itself rather than a materialised copy of it.
        cte = cte.prefix_with("NOT MATERIALIZED", dialect="postgresql")
    return cte


def _facts(dialect: str, lo: int | None, hi: int | None, grouping: str, by: str) -> Any:
    """One row per captured lead created in [lo, hi): its funnel row's facts (`lead_funnel`)."""
    f = lead_funnel
    columns = [
        *_fact_columns(dialect, f, f.c.decision == "sales"),
        f.c.score,
        f.c.grade,
        f.c.decision,
        f.c.exploration,
        _epoch_day(dialect, f.c.created_at).label("day"),
        f.c.touches,
        f.c.first_channel,
        f.c.first_campaign,
        f.c.last_channel,
        f.c.last_campaign,
    ]
    source: Any = f
    if grouping == "attribute":
        a = lead_funnel_attributes
        source = f.outerjoin(a, sa.and_(a.c.name == by, a.c.lead_id == f.c.lead_id))
        columns.append(sa.cast(a.c.value, sa.Text).label("attribute"))
    return _cte(_selected(sa.select(*columns).select_from(source), f, lo, hi), "facts", dialect)


def _credit_facts(dialect: str, lo: int | None, hi: int | None, grouping: str) -> Any:
    """Linear credit: a row per selected lead and value of its touches up to the close, with its
    share (`weight`), from the credit table of `grouping`."""
    c = CREDITS[grouping]
    columns = [*_fact_columns(dialect, c, c.c.sent.is_(sa.true())), c.c.value, c.c.weight,
               c.c.touched]  # fmt: skip
    return _cte(_selected(sa.select(*columns), c, lo, hi), "credited", dialect)


# The parts of the one statement a report runs: sums per group, won deals per group, the total's
# sums and the total's won deals (every selected lead once).
_GROUPS, _DEALS, _TOTAL, _TOTAL_DEALS, _EXPLORATION = 0, 1, 2, 3, 4


def _part(
    part: int,
    kind: Any,
    key: Any,
    sums: list[Any] | None,
    days: Any = None,
    weight: Any = None,
    points: Any = None,
) -> list[Any]:
    """The columns every part of the statement shares (typed NULL where a part has no value:
    PostgreSQL reads two untyped NULLs in a UNION as text)."""
    empty = sa.cast(sa.null(), sa.Float)
    values = sums if sums is not None else [empty] * len(_SUMS)
    return [
        sa.literal(part).label("part"),
        (kind if kind is not None else sa.cast(sa.null(), sa.Integer)).label("kind"),
        (key if key is not None else sa.null()).label("key"),
        *(v.label(name) for v, name in zip(values, _SUMS)),
        (days if days is not None else empty).label("days"),
        (weight if weight is not None else empty).label("weight"),
        (points if points is not None else sa.cast(sa.null(), sa.Text)).label("points"),
    ]


def _deals_part(
    dialect: str, part: int, kind: Any, key: Any, source: Any, weight: Any, by: list[Any]
) -> Any:
    """The won deals' days to close and credit (`weight`) in the groups of `by`.

    PostgreSQL: one row per group, its deals as one text "days weight days weight ..." (and their
    number in `leads`), read back by numpy (`_won_deals`): a row per deal was ~700,000 rows on 1M
    leads, and taking them through the driver into Python was most of a linear report's 11 s.
    SQLite: a row per deal."""
    won = _won_dated(source)
    if dialect != "postgresql":
        return sa.select(*_part(part, kind, key, None, source.c.days, weight)).where(won)
    point = sa.cast(source.c.days, sa.Text).concat(" ").concat(sa.cast(weight, sa.Text))
    empty = sa.cast(sa.null(), sa.Float)
    sums = [sa.cast(sa.func.count(), sa.Float), *[empty] * (len(_SUMS) - 1)]
    query = sa.select(*_part(part, kind, key, sums, points=sa.func.string_agg(point, " ")))
    return query.where(won).group_by(*by)


@dataclass
class _Deals:
    """The won deals: the rows they came in (`kind`, `key`), how many each row holds, and each
    deal's days to close and credit, in row order."""

    rows: pd.DataFrame
    counts: np.ndarray
    days: np.ndarray
    weight: np.ndarray

    def each(self, row_codes: np.ndarray) -> np.ndarray:
        """A value per deal from a value per row."""
        return np.repeat(np.asarray(row_codes), self.counts)


def _won_deals(dialect: str, rows: pd.DataFrame) -> _Deals:
    if dialect != "postgresql":  # a row per deal
        ones = np.ones(len(rows), dtype=np.int64)
        return _Deals(rows, ones, _float(rows["days"]), _float(rows["weight"]))
    # a row per group (the total's: even without a deal, then 0 and no text)
    counts = np.nan_to_num(_float(rows["leads"])).astype(np.int64)
    texts = rows["points"].to_numpy(dtype=object)
    pairs = [np.fromstring(text, sep=" ") if text else np.empty(0) for text in texts]
    if [len(p) for p in pairs] != list(2 * counts):
        raise RuntimeError("funnel report: the won deals' days came back malformed")
    flat = np.concatenate(pairs) if pairs else np.empty(0)
    return _Deals(rows, counts, flat[0::2], flat[1::2])


def _summed(source: Any, weight: Any) -> list[Any]:
    """The credited sums of `_SUMS`, each fact of `source` times the row's weight."""
    return [
        sa.func.sum(weight),
        *(sa.func.sum(weight * source.c[name]) for name in _SUMS[1:]),
    ]


def _won_dated(source: Any) -> ColumnElement[bool]:
    return sa.and_(source.c.won == 1, source.c.days.is_not(None))


def _total_parts(dialect: str, facts: Any) -> list[Any]:
    return [
        sa.select(*_part(_TOTAL, None, None, _summed(facts, sa.literal(1)))),
        _deals_part(dialect, _TOTAL_DEALS, None, None, facts, sa.literal(1.0), []),
    ]


def _float(values: Any) -> np.ndarray:
    """SQL sums (PostgreSQL's are Decimal for integers; NULL for no rows) as floats."""
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)


def _sums_by_code(
    table: pd.DataFrame, codes: np.ndarray, labels: list[str], natural: bool, weighted: bool
) -> dict[str, Any]:
    n = len(labels)
    sums = {
        name: np.bincount(codes, weights=np.nan_to_num(_float(table[name])), minlength=n)
        if len(table) else np.zeros(n)
        for name in _SUMS
    }  # fmt: skip
    return {"labels": labels, "natural": natural, "weighted": weighted, **sums}


def _group_sums(sums: dict[str, Any], days_group, deals: _Deals) -> GroupSums:
    return GroupSums(
        labels=sums["labels"],
        natural=sums["natural"],
        weighted=sums["weighted"],
        leads=sums["leads"],
        sent_to_sales=sums["sent"],
        won=sums["won"],
        lost=sums["lost"],
        won_with_amount=sums["with_amount"],
        revenue=sums["revenue"],
        days_group=np.asarray(days_group, dtype=np.int64),
        days=deals.days,
        days_weight=deals.weight,
    )


def _frame(connection: Connection, query: Any) -> pd.DataFrame:
    result = connection.execute(query)
    keys = list(result.keys())
    # column by column: pandas probing each Row object costs seconds a 100k rows
    columns = list(zip(*result.fetchall())) or [()] * len(keys)
    return pd.DataFrame(
        {key: pd.Series(values, dtype=object) for key, values in zip(keys, columns)}
    )


def _total_sums(table: pd.DataFrame, deals: _Deals) -> GroupSums:
    sums = _sums_by_code(table, np.zeros(len(table), dtype=np.int64), [TOTAL], True, False)
    return _group_sums(sums, np.zeros(len(deals.days)), deals)


# --------------------------------------------------------------------------------------------------
# Groups of whole leads: week, grade, score band, decision, an attribute


def _lead_parts(dialect: str, facts: Any, grouping: str) -> tuple[list[Any], list[Any]]:
    key = {
        "week": facts.c.day,
        "grade": facts.c.grade,
        "decision": facts.c.decision,
        "score_band": facts.c.score,
        "attribute": facts.c.get("attribute"),
    }[grouping]
    kind = sa.literal(_VALUE)
    groups = sa.select(*_part(_GROUPS, kind, key, _summed(facts, sa.literal(1)))).group_by(key)
    deals = _deals_part(dialect, _DEALS, kind, key, facts, sa.literal(1.0), [key])
    return [groups], [deals]


def _lead_sums(
    table: pd.DataFrame, deals: _Deals, grouping: str, lo: int | None, hi: int | None
) -> GroupSums:
    keys = table["key"]
    natural = True
    if grouping == "week":
        day = _float(keys)
        created = np.where(np.isnan(day), _NAT, np.nan_to_num(day) * DAY_NS).astype(np.int64)
        codes, labels = week_groups(created, lo, hi)
    elif grouping in ("grade", "decision"):
        known = GRADES if grouping == "grade" else DECISIONS
        codes, labels = known_value_groups(keys.to_numpy(dtype=object), known)
    elif grouping == "score_band":
        codes, labels = score_band_groups(_float(keys))
    else:  # one JSON text per group, not per lead
        # a lead without the attribute has no key (None, or NaN once in a frame)
        values = pd.Series(
            [orjson.loads(k) if isinstance(k, str | bytes) else None for k in keys], dtype=object
        )
        values = values.infer_objects()  # numbers, yes/no: ordered as the file report orders them
        codes, labels, natural = attribute_groups(values)
    sums = _sums_by_code(table, codes, labels, natural, weighted=False)
    position = pd.Index(_key_values(keys)).get_indexer(_key_values(deals.rows["key"]))
    return _group_sums(sums, deals.each(codes[position]), deals)


def _key_values(keys: pd.Series) -> pd.Series:
    """Group keys with NULL as one findable value (NaN never equals itself in a lookup)."""
    return keys.astype(object).where(keys.notna(), "\x00null")


# --------------------------------------------------------------------------------------------------
# Channels and campaigns: the attribution rules


def _touch_parts(
    dialect: str, facts: Any, grouping: str, attribution: str
) -> tuple[list[Any], list[Any]]:
    # The lead's first (last) touch up to its close, kept in its funnel row.
    end = "first" if attribution == "first_touch" else "last"
    value = facts.c[f"{end}_{grouping}"]
    kind = sa.case((facts.c.touches == 0, _NO_TOUCH), (value.is_(None), _NO_VALUE), else_=_VALUE)
    grouped = sa.select(*_part(_GROUPS, kind, value, _summed(facts, sa.literal(1)))).group_by(
        kind, value
    )
    won_deals = _deals_part(dialect, _DEALS, kind, value, facts, sa.literal(1.0), [kind, value])
    return [grouped], [won_deals]


def _linear_parts(dialect: str, credited: Any) -> tuple[list[Any], list[Any]]:
    """Linear credit: each counted touch 1/k of its lead (k = its touches up to the close), so a
    value gets (its touches)/k of the lead; a lead without a counted touch goes whole to
    '(none)'. The credit table holds those shares (`serving.report.funnel_tables`)."""
    kind = sa.case(
        (credited.c.touched.is_(sa.false()), _NO_TOUCH),
        (credited.c.value.is_(None), _NO_VALUE),
        else_=_VALUE,
    )
    weight = credited.c.weight
    groups = sa.select(*_part(_GROUPS, kind, credited.c.value, _summed(credited, weight)))
    groups = groups.group_by(kind, credited.c.value)
    # One point per (won deal, value) with the deal's whole credit there.
    value = credited.c.value
    deals = _deals_part(dialect, _DEALS, kind, value, credited, weight, [kind, value])
    return [groups], [deals]


def _touch_values(connection: Connection, grouping: str) -> tuple[list[str], bool]:
    """Every value of the captured touchpoints (the file report lists every value of the
    touchpoints file), and whether some touch has none: a loose index scan, a probe a value."""
    column = lead_touchpoints.c.channel if grouping == "channel" else lead_touchpoints.c.campaign
    inner = lead_touchpoints.alias("inner")
    inner_column = inner.c.channel if grouping == "channel" else inner.c.campaign
    walk = sa.select(sa.func.min(column).label("value")).cte("walk", recursive=True)
    following = (
        sa.select(sa.func.min(inner_column)).where(inner_column > walk.c.value).correlate(walk)
        .scalar_subquery()
    )  # fmt: skip
    walk = walk.union_all(sa.select(following).where(walk.c.value.is_not(None)))
    values = list(
        connection.execute(sa.select(walk.c.value).where(walk.c.value.is_not(None))).scalars()
    )
    empty = connection.execute(sa.select(column).where(column.is_(None)).limit(1)).first()
    return [str(v) for v in values], empty is not None


def _touch_sums(
    table: pd.DataFrame,
    deals: _Deals,
    grouping: str,
    attribution: str,
    found: tuple[list[str], bool],
) -> GroupSums:
    values, has_empty = found
    missing = MISSING if grouping == "channel" else NO_CAMPAIGN
    labels = [*values, *([missing] if has_empty else []), NO_TOUCHPOINTS]
    # Group keys: a value's text, or a key of its own for "no campaign" and "no touchpoint".
    index = pd.Index([*values, *(["\x00" + missing] if has_empty else []), "\x00" + NO_TOUCHPOINTS])

    def codes(frame: pd.DataFrame) -> np.ndarray:
        kind = frame["kind"].to_numpy(dtype=np.int64)
        text = frame["key"].astype(object).to_numpy()
        text = np.where(kind == _NO_VALUE, "\x00" + missing, text)
        text = np.where(kind == _NO_TOUCH, "\x00" + NO_TOUCHPOINTS, text)
        return index.get_indexer(text)

    sums = _sums_by_code(
        table, codes(table), labels, natural=False, weighted=attribution == "linear"
    )
    return _group_sums(sums, deals.each(codes(deals.rows)), deals)
