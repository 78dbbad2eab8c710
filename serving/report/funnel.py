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

Percentiles: the file report's weighted quantile (each won deal a point weighted by its credit,
numpy's "hazen" positions when weights are equal) over the won deals' days, fetched narrow
(group, days, weight). PostgreSQL's `percentile_cont` is a different quantile (the p75 of 10, 20,
30, 40 days is 32.5 there and 35 in the file report) and knows no weights, so it is not used:
files and the database must agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement

from features.report.funnel import (
    DAY_NS,
    DECISIONS,
    GRADES,
    FunnelError,
    GroupSums,
    attribute_groups,
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
from serving.db import captured_leads, lead_attributes, lead_touchpoints, outcomes, score_log

_NAT = np.iinfo(np.int64).min
# What a touch-level group key is: a value, no value (campaign-less touch), or no touch at all.
_VALUE, _NO_VALUE, _NO_TOUCH = 0, 1, 2
_SUMS = ("leads", "sent", "won", "lost", "with_amount", "revenue")


def check_request(by: str, attribution: str, start: Any, end: Any) -> tuple[int | None, int | None]:
    """The bounds as UTC nanoseconds; FunnelError naming `attribution`, `from` or `to`."""
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
        grouping = _check_by(connection, by)
        dialect = connection.dialect.name
        facts = _facts(dialect, lo, hi, grouping, by)
        touch_level = grouping in ("channel", "campaign")
        if touch_level:
            rows = _touch_sums(connection, facts, grouping, attribution)
        else:
            rows = _lead_sums(connection, facts, grouping, dialect, lo, hi)
        total = _total_sums(connection, facts)
    frame = report_frame(by, rows, total, touch_level)
    frame.attrs.update(
        report="funnel",
        by=by,
        attribution=attribution if touch_level else None,
        start=None if lo is None else iso_moment(lo),
        end=None if hi is None else iso_moment(hi),
    )
    return frame


# --------------------------------------------------------------------------------------------------
# Checks


def _check_by(connection: Connection, by: str) -> str:
    """The grouping's name, or "attribute" for a captured attribute; FunnelError otherwise."""
    if by in GROUPING_NAMES:
        return by
    if by not in MEASURE_NAMES:
        found = connection.execute(
            sa.select(lead_attributes.c.name).where(lead_attributes.c.name == by).limit(1)
        ).first()
        if found is not None:
            return "attribute"
    names = list(
        connection.execute(
            sa.select(lead_attributes.c.name).distinct().order_by(lead_attributes.c.name).limit(31)
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


def _facts(dialect: str, lo: int | None, hi: int | None, grouping: str, by: str) -> sa.CTE:
    leads, o = captured_leads, outcomes
    ranked = sa.select(
        score_log.c.lead_id,
        score_log.c.score,
        score_log.c.grade,
        score_log.c.decision,
        sa.func.row_number()
        .over(
            partition_by=score_log.c.lead_id,
            order_by=(score_log.c.scored_at.desc(), score_log.c.id.desc()),
        )
        .label("rank"),
    ).subquery("ranked_scores")
    latest = sa.select(ranked).where(ranked.c.rank == 1).subquery("latest_scores")
    won = o.c.won.is_(sa.true())
    has_amount = sa.and_(won, o.c.amount.is_not(None))
    columns: list[Any] = [
        leads.c.lead_id,
        leads.c.created_at,
        o.c.closed_at,
        sa.case((won, 1), else_=0).label("won"),
        sa.case((o.c.won.is_(sa.false()), 1), else_=0).label("lost"),
        sa.case((has_amount, 1), else_=0).label("with_amount"),
        sa.case((has_amount, o.c.amount), else_=0.0).label("revenue"),
        sa.case((latest.c.decision == "sales", 1), else_=0).label("sent"),
        sa.case(
            (
                sa.and_(won, leads.c.created_at.is_not(None)),
                _days_to_close(dialect, o.c.closed_at, leads.c.created_at),
            ),
            else_=None,
        ).label("days"),  # fmt: skip
        latest.c.score,
        latest.c.grade,
        latest.c.decision,
        _epoch_day(dialect, leads.c.created_at).label("day"),
    ]
    source = leads.outerjoin(o, o.c.lead_id == leads.c.lead_id).outerjoin(
        latest, latest.c.lead_id == leads.c.lead_id
    )
    if grouping == "attribute":
        ranked_values = (
            sa.select(
                lead_attributes.c.lead_id,
                sa.cast(lead_attributes.c.value, sa.Text).label("value"),
                sa.func.row_number()
                .over(
                    partition_by=lead_attributes.c.lead_id,
                    order_by=(lead_attributes.c.changed_at.desc(), lead_attributes.c.id.desc()),
                )
                .label("rank"),
            )
            .where(lead_attributes.c.name == by)
            .subquery("ranked_values")
        )
        values = sa.select(ranked_values).where(ranked_values.c.rank == 1).subquery("values")
        source = source.outerjoin(values, values.c.lead_id == leads.c.lead_id)
        columns.append(values.c.value.label("attribute"))
    query = sa.select(*columns).select_from(source)
    if lo is not None:
        query = query.where(leads.c.created_at >= pd.Timestamp(lo, tz="UTC").to_pydatetime())
    if hi is not None:
        query = query.where(leads.c.created_at < pd.Timestamp(hi, tz="UTC").to_pydatetime())
    return query.cte("facts")


def _summed(facts: Any, weight: Any) -> list[Any]:
    """The credited sums of `_SUMS`, each fact times the row's weight."""
    return [
        sa.func.sum(weight).label("leads"),
        *(sa.func.sum(weight * facts.c[name]).label(name) for name in _SUMS[1:]),
    ]


def _float(values: Any) -> np.ndarray:
    """SQL sums (PostgreSQL's are Decimal for integers; NULL for no rows) as floats."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _sums_by_code(
    table: pd.DataFrame, codes: np.ndarray, labels: list[str], natural: bool, weighted: bool
) -> dict[str, Any]:
    n = len(labels)
    sums = {
        name: np.bincount(codes, weights=_float(table[name]), minlength=n) if len(table) else
        np.zeros(n) for name in _SUMS
    }  # fmt: skip
    return {"labels": labels, "natural": natural, "weighted": weighted, **sums}


def _group_sums(sums: dict[str, Any], days_group, days, days_weight) -> GroupSums:
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
        days=_float(days),
        days_weight=_float(days_weight),
    )


def _frame(connection: Connection, query: Any) -> pd.DataFrame:
    result = connection.execute(query)
    return pd.DataFrame(result.all(), columns=list(result.keys()))


# --------------------------------------------------------------------------------------------------
# Groups of whole leads: week, grade, score band, decision, an attribute


def _lead_sums(
    connection: Connection, facts: Any, grouping: str, dialect: str, lo: int | None, hi: int | None
) -> GroupSums:
    key = {
        "week": facts.c.day,
        "grade": facts.c.grade,
        "decision": facts.c.decision,
        "score_band": facts.c.score,
        "attribute": facts.c.get("attribute"),
    }[grouping]
    table = _frame(
        connection, sa.select(key.label("key"), *_summed(facts, sa.literal(1))).group_by(key)
    )
    deals = _frame(
        connection,
        sa.select(key.label("key"), facts.c.days).where(
            facts.c.won == 1, facts.c.days.is_not(None)
        ),
    )
    keys = table["key"]
    natural = True
    if grouping == "week":
        day = pd.to_numeric(keys).to_numpy(dtype=float)
        created = np.where(np.isnan(day), _NAT, np.nan_to_num(day) * DAY_NS).astype(np.int64)
        codes, labels = week_groups(created, lo, hi)
    elif grouping in ("grade", "decision"):
        known = GRADES if grouping == "grade" else DECISIONS
        codes, labels = known_value_groups(keys.to_numpy(dtype=object), known)
    elif grouping == "score_band":
        codes, labels = score_band_groups(pd.to_numeric(keys).to_numpy(dtype=float))
    else:
        values = pd.Series([None if k is None else orjson.loads(k) for k in keys], dtype=object)
        values = values.infer_objects()  # numbers, yes/no: ordered as the file report orders them
        codes, labels, natural = attribute_groups(values)
    sums = _sums_by_code(table, codes, labels, natural, weighted=False)
    position = _key_index(keys).get_indexer(_key_values(deals["key"]))
    return _group_sums(sums, codes[position], deals["days"], np.ones(len(deals)))


def _key_values(keys: pd.Series) -> pd.Series:
    """Group keys with NULL as one findable value (NaN never equals itself in a lookup)."""
    return keys.astype(object).where(keys.notna(), "\x00null")


def _key_index(keys: pd.Series) -> pd.Index:
    return pd.Index(_key_values(keys))


# --------------------------------------------------------------------------------------------------
# Channels and campaigns: the attribution rules


def _touch_sums(connection: Connection, facts: Any, grouping: str, attribution: str) -> GroupSums:
    t = lead_touchpoints
    value = t.c.channel if grouping == "channel" else t.c.campaign
    counted = (
        sa.select(t.c.id, t.c.lead_id, t.c.occurred_at, value.label("value"))
        .select_from(t.join(facts, facts.c.lead_id == t.c.lead_id))
        .where(sa.or_(facts.c.closed_at.is_(None), t.c.occurred_at <= facts.c.closed_at))
        .cte("counted")
    )
    if attribution == "linear":
        pairs = (
            sa.select(counted.c.lead_id, counted.c.value, sa.func.count().label("n"))
            .group_by(counted.c.lead_id, counted.c.value)
            .subquery("pairs")
        )
        credit = sa.cast(pairs.c.n, sa.Float) / sa.func.sum(pairs.c.n).over(
            partition_by=pairs.c.lead_id
        )
        credited = sa.select(pairs.c.lead_id, pairs.c.value, credit.label("credit")).subquery(
            "credited"
        )
    else:
        first = attribution == "first_touch"
        order = (
            (counted.c.occurred_at.asc(), counted.c.id.asc())
            if first
            else (counted.c.occurred_at.desc(), counted.c.id.desc())
        )
        ranked = sa.select(
            counted.c.lead_id,
            counted.c.value,
            sa.func.row_number().over(partition_by=counted.c.lead_id, order_by=order).label("rank"),
        ).subquery("ranked")
        credited = (
            sa.select(ranked.c.lead_id, ranked.c.value, sa.literal(1.0).label("credit"))
            .where(ranked.c.rank == 1)
            .subquery("credited")
        )
    untouched = credited.c.lead_id.is_(None)
    kind = sa.case((untouched, _NO_TOUCH), (credited.c.value.is_(None), _NO_VALUE), else_=_VALUE)
    weight = sa.func.coalesce(credited.c.credit, 1.0)
    joined = facts.outerjoin(credited, credited.c.lead_id == facts.c.lead_id)
    table = _frame(
        connection,
        sa.select(kind.label("kind"), credited.c.value.label("key"), *_summed(facts, weight))
        .select_from(joined)
        .group_by(kind, credited.c.value),
    )
    deals = _frame(
        connection,
        sa.select(kind.label("kind"), credited.c.value.label("key"), facts.c.days,
                  weight.label("weight"))
        .select_from(joined)
        .where(facts.c.won == 1, facts.c.days.is_not(None)),
    )  # fmt: skip
    # Every value of the selected leads' touches is a row, even with all its touches after a close.
    seen = set(
        connection.execute(
            sa.select(value).distinct().select_from(t.join(facts, facts.c.lead_id == t.c.lead_id))
        ).scalars()
    )
    values = sorted(v for v in seen if v is not None)
    missing = MISSING if grouping == "channel" else NO_CAMPAIGN
    labels = [str(v) for v in values] + ([missing] if None in seen else []) + [NO_TOUCHPOINTS]
    # Group keys: a value's text, or a label of its own for "no campaign" and "no touchpoint".
    index = pd.Index(
        values + (["\x00" + missing] if None in seen else []) + ["\x00" + NO_TOUCHPOINTS]
    )

    def keys(frame: pd.DataFrame) -> np.ndarray:
        kind = frame["kind"].to_numpy(dtype=np.int64)
        text = frame["key"].astype(object).to_numpy()
        text = np.where(kind == _NO_VALUE, "\x00" + missing, text)
        text = np.where(kind == _NO_TOUCH, "\x00" + NO_TOUCHPOINTS, text)
        return index.get_indexer(text)

    sums = _sums_by_code(
        table, keys(table), labels, natural=False, weighted=attribution == "linear"
    )
    return _group_sums(sums, keys(deals), deals["days"], deals["weight"])


# --------------------------------------------------------------------------------------------------
# The total: every selected lead once


def _total_sums(connection: Connection, facts: Any) -> GroupSums:
    table = _frame(connection, sa.select(*_summed(facts, sa.literal(1))))
    if table["leads"].isna().all():  # no lead selected: SUM over no rows is NULL
        table = pd.DataFrame({name: [0] for name in _SUMS})
    days = list(
        connection.execute(
            sa.select(facts.c.days).where(facts.c.won == 1, facts.c.days.is_not(None))
        ).scalars()
    )
    sums = _sums_by_code(table, np.zeros(1, dtype=np.int64), [TOTAL], True, weighted=False)
    return _group_sums(sums, np.zeros(len(days)), days, np.ones(len(days)))
