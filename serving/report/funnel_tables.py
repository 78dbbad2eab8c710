"""The funnel's own tables: one narrow row per lead, kept up to date by the writers.

`GET /v1/reports/funnel` groups ~1M leads; computing each lead's latest score, first and last
touch up to its close and latest attributes from the capture tables at request time took
23-91 s on 1M leads and 10M touchpoints (`bench/funnel_db.py`). These tables hold those facts,
derived once per change instead of once per report (migration `0008_lead_funnel`):

- `lead_funnel`: one row per lead the service holds anything about: captured (and its
  `created_at`), its latest score (score, grade, decision, exploration, `scored_at`), its
  outcome (won, `closed_at`, amount), and of its touchpoints up to the close (every touch while
  open): how many (`touches`) and the channel and campaign of the first and of the last;
- `lead_funnel_channels`, `lead_funnel_campaigns`: linear credit, a row per lead and value of
  its touches up to the close with its share (`weight`), and a copy of the lead's facts, so the
  linear report groups one table without a join (a lead without a touch: one untouched row);
- `lead_funnel_attributes`: each lead's latest value of each attribute.

Who keeps them up to date, in the transaction that writes the facts they derive from:
- the capture writer and `POST /v1/outcomes`: `refresh_leads` for the leads they wrote
  (everything recomputed from the stored facts; a new close changes which touches count);
- the score-log writer: `record_scores`, the latest score only (an upsert that keeps the row
  with the later `scored_at`, so the order writers commit in does not matter), and the credit
  rows' copy of whether the lead went to sales;
- erasure deletes the lead's rows; retention's purge and erasure's late sweep `refresh_leads`
  the leads they touched (a lead nothing is held about any more loses its row).

Concurrency (PostgreSQL, several workers): `refresh_leads` locks the leads' rows (in lead order)
before reading the facts, so of two refreshes of a lead the later one reads what the earlier
committed; a score upsert waits for the lock too. The rules are those of the report
(`serving.report.funnel`): latest score by `scored_at` then the row written last; a touch counts
up to and including the close, ties on `occurred_at` go to the touch stored first (first touch)
or last (last touch); an attribute's latest value by `changed_at`, then the row stored last.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from serving.db import (
    captured_leads,
    lead_attributes,
    lead_funnel,
    lead_funnel_attributes,
    lead_funnel_campaigns,
    lead_funnel_channels,
    lead_touchpoints,
    outcomes,
    score_log,
)

# Leads per refresh statement: SQLite takes 999 parameters in one statement.
CHUNK = 500
SCORE_COLUMNS = ("scored_at", "score", "grade", "decision", "exploration")
# Every column `refresh_leads` recomputes (all but the key).
DERIVED = tuple(c.name for c in lead_funnel.columns if c.name != "lead_id")
CREDITS = {"channel": lead_funnel_channels, "campaign": lead_funnel_campaigns}


def _insert(connection: Connection, table: sa.Table) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _among(column: Any, ids: Sequence[str] | None) -> Any:
    return sa.true() if ids is None else column.in_(list(ids))


def refresh_leads(connection: Connection, lead_ids: Iterable[str]) -> None:
    """Recompute the funnel rows of `lead_ids` from the stored facts (in this transaction)."""
    ids = sorted(set(lead_ids))
    for start in range(0, len(ids), CHUNK):
        _refresh(connection, ids[start : start + CHUNK])


def refresh_all(connection: Connection) -> None:
    """Rebuild the funnel tables from the stored facts: the migration's backfill, and after a
    bulk load (`bench/funnel_db.py`). Set-based: one statement per table."""
    for table in (*CREDITS.values(), lead_funnel_attributes, lead_funnel):
        connection.execute(table.delete())
    held = sa.union(
        sa.select(captured_leads.c.lead_id),
        sa.select(score_log.c.lead_id),
        sa.select(outcomes.c.lead_id),
    ).subquery("held")
    connection.execute(
        lead_funnel.insert().from_select(["lead_id", *DERIVED], _derived(held.c.lead_id, None))
    )
    _write_details(connection, None)


def _refresh(connection: Connection, ids: list[str]) -> None:
    f = lead_funnel
    connection.execute(
        _insert(connection, f).on_conflict_do_nothing(index_elements=["lead_id"]),
        [{"lead_id": i} for i in ids],
    )
    if connection.dialect.name == "postgresql":
        # Lock before reading: a concurrent refresh of a lead then reads what this one commits.
        connection.execute(
            sa.select(f.c.lead_id).where(f.c.lead_id.in_(ids)).order_by(f.c.lead_id)
            .with_for_update()
        )  # fmt: skip
    base = sa.select(f.c.lead_id).where(f.c.lead_id.in_(ids)).subquery("base")
    upsert = _insert(connection, f).from_select(
        ["lead_id", *DERIVED], _derived(base.c.lead_id, ids)
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=["lead_id"], set_={name: upsert.excluded[name] for name in DERIVED}
    )
    connection.execute(upsert)
    # A lead nothing is held about any more (erased, purged) keeps no row.
    connection.execute(
        f.delete().where(
            f.c.lead_id.in_(ids), f.c.captured.is_(False), f.c.scored_at.is_(None),
            f.c.closed_at.is_(None),
        )
    )  # fmt: skip
    _write_details(connection, ids)


def _counted_touches(ids: Sequence[str] | None) -> Any:
    """The touches that count for attribution: up to and including the lead's close."""
    t, o = lead_touchpoints, outcomes
    return (
        sa.select(t.c.lead_id, t.c.occurred_at, t.c.id, t.c.channel, t.c.campaign)
        .select_from(t.outerjoin(o, o.c.lead_id == t.c.lead_id))
        .where(_among(t.c.lead_id, ids), sa.or_(o.c.closed_at.is_(None),
                                                t.c.occurred_at <= o.c.closed_at))
    )  # fmt: skip


def _derived(lead_id: Any, ids: Sequence[str] | None) -> Any:
    """SELECT lead_id, *DERIVED for the leads of `lead_id` (a column of some FROM)."""
    s = score_log
    newest = sa.func.row_number().over(
        partition_by=s.c.lead_id, order_by=(s.c.scored_at.desc(), s.c.id.desc())
    )
    ranked = (
        sa.select(s.c.lead_id, *(s.c[name] for name in SCORE_COLUMNS), newest.label("newest"))
        .where(_among(s.c.lead_id, ids))
        .subquery("ranked")
    )
    latest = sa.select(ranked).where(ranked.c.newest == 1).subquery("latest")

    counted = _counted_touches(ids).subquery("counted")
    order = (counted.c.occurred_at, counted.c.id)
    whole = {"partition_by": counted.c.lead_id, "order_by": order, "rows": (None, None)}
    per_touch = sa.select(
        counted.c.lead_id,
        sa.func.count().over(partition_by=counted.c.lead_id).label("touches"),
        sa.func.first_value(counted.c.channel).over(**whole).label("first_channel"),
        sa.func.first_value(counted.c.campaign).over(**whole).label("first_campaign"),
        sa.func.last_value(counted.c.channel).over(**whole).label("last_channel"),
        sa.func.last_value(counted.c.campaign).over(**whole).label("last_campaign"),
        sa.func.row_number().over(partition_by=counted.c.lead_id, order_by=order).label("n"),
    ).subquery("per_touch")
    touched = sa.select(per_touch).where(per_touch.c.n == 1).subquery("touched")

    c, o = captured_leads, outcomes
    source = sa.select(lead_id.label("lead_id")).subquery("leads")
    joined = (
        source.outerjoin(c, c.c.lead_id == source.c.lead_id)
        .outerjoin(latest, latest.c.lead_id == source.c.lead_id)
        .outerjoin(o, o.c.lead_id == source.c.lead_id)
        .outerjoin(touched, touched.c.lead_id == source.c.lead_id)
    )
    return (
        sa.select(
            source.c.lead_id,
            c.c.lead_id.is_not(None).label("captured"),
            c.c.created_at,
            sa.func.coalesce(touched.c.touches, 0).label("touches"),
            touched.c.first_channel,
            touched.c.first_campaign,
            touched.c.last_channel,
            touched.c.last_campaign,
            latest.c.scored_at,
            latest.c.score,
            latest.c.grade,
            latest.c.decision,
            sa.func.coalesce(latest.c.exploration, sa.false()).label("exploration"),
            o.c.won,
            o.c.closed_at,
            o.c.amount,
        )
        .select_from(joined)
        .where(sa.true())
    )  # a WHERE: SQLite's INSERT ... SELECT ... ON CONFLICT


def _write_details(connection: Connection, ids: Sequence[str] | None) -> None:
    """The credits and latest attributes of `ids` (every lead: None), replaced; after the funnel
    rows themselves (the credits copy their facts)."""
    if ids is not None:
        for table in (*CREDITS.values(), lead_funnel_attributes):
            connection.execute(table.delete().where(table.c.lead_id.in_(list(ids))))
    f = lead_funnel
    facts = [f.c.captured, f.c.created_at, _sent(f), f.c.won, f.c.closed_at, f.c.amount]
    names = ["lead_id", "value", "weight", "touched", "captured", "created_at", "sent", "won",
             "closed_at", "amount"]  # fmt: skip
    for grouping, table in CREDITS.items():
        counted = _counted_touches(ids).subquery("counted")
        per_value = (
            sa.select(counted.c.lead_id, counted.c[grouping].label("value"),
                      sa.func.count().label("touches"))
            .group_by(counted.c.lead_id, counted.c[grouping])
            .subquery("per_value")
        )  # fmt: skip
        weight = sa.cast(per_value.c.touches, sa.Float) / sa.cast(f.c.touches, sa.Float)
        captured = f.c.captured.is_(sa.true())  # the report counts captured leads only
        touched = (
            sa.select(f.c.lead_id, per_value.c.value, weight, sa.true(), *facts)
            .select_from(per_value.join(f, f.c.lead_id == per_value.c.lead_id))
            .where(captured)
        )
        untouched = sa.select(
            f.c.lead_id, sa.cast(sa.null(), sa.Text), sa.literal(1.0), sa.false(), *facts
        ).where(f.c.touches == 0, captured, _among(f.c.lead_id, ids))
        connection.execute(table.insert().from_select(names, sa.union_all(touched, untouched)))
    a = lead_attributes
    newest = sa.func.row_number().over(
        partition_by=(a.c.lead_id, a.c.name), order_by=(a.c.changed_at.desc(), a.c.id.desc())
    )
    ranked = (
        sa.select(a.c.name, a.c.lead_id, a.c.value, newest.label("newest"))
        .where(_among(a.c.lead_id, ids), a.c.lead_id.in_(sa.select(lead_funnel.c.lead_id)))
        .subquery("ranked")
    )
    connection.execute(
        lead_funnel_attributes.insert().from_select(
            ["name", "lead_id", "value"],
            sa.select(ranked.c.name, ranked.c.lead_id, ranked.c.value).where(ranked.c.newest == 1),
        )
    )


def _sent(f: Any) -> Any:
    return sa.func.coalesce(f.c.decision == "sales", sa.false())


def record_scores(connection: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Each lead's latest score among `rows` (lead_id and SCORE_COLUMNS; a later row wins a tie)
    into its funnel row, unless the row holds a later one: what the score-log writer calls."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        held = latest.get(row["lead_id"])
        if held is None or row["scored_at"] >= held["scored_at"]:
            latest[row["lead_id"]] = row
    if not latest:
        return
    values = [
        {"lead_id": lead_id, **{name: latest[lead_id].get(name) for name in SCORE_COLUMNS}}
        for lead_id in sorted(latest)  # in lead order: workers lock rows in the same order
    ]
    for value in values:
        value["exploration"] = bool(value["exploration"])
    upsert, credit_updates = _record_statements(connection)
    connection.execute(upsert, values)
    ids = [value["lead_id"] for value in values]
    for start in range(0, len(ids), CHUNK):
        for update in credit_updates:
            connection.execute(update, {"ids": ids[start : start + CHUNK]})


_RECORD_STATEMENTS: dict[str, tuple[Any, list[Any]]] = {}


def _record_statements(connection: Connection) -> tuple[Any, list[Any]]:
    """`record_scores`' statements, built once per dialect (built on every flush they were
    about a tenth of the score-log writer's time): the funnel rows' upsert, then per credit
    table the update of its copy of whether the lead went to sales (the leads' ids expanded)."""
    name = connection.dialect.name
    statements = _RECORD_STATEMENTS.get(name)
    if statements is None:
        f = lead_funnel
        upsert = _insert(connection, f)
        upsert = upsert.on_conflict_do_update(
            index_elements=["lead_id"],
            set_={column: upsert.excluded[column] for column in SCORE_COLUMNS},
            where=sa.or_(f.c.scored_at.is_(None), upsert.excluded.scored_at >= f.c.scored_at),
        )
        # The credit rows' copy of whether the lead went to sales, from the row just written;
        # only the rows whose copy differs are written. UPDATE ... FROM (a join): the
        # correlated subquery per credit row took ~20 ms per 1,000 leads on SQLite, this ~4 ms.
        ids: sa.BindParameter[list[str]] = sa.bindparam("ids", expanding=True)
        updates = [
            table.update()
            .where(table.c.lead_id == f.c.lead_id, table.c.lead_id.in_(ids))
            .where(table.c.sent.is_distinct_from(_sent(f)))
            .values(sent=_sent(f))
            for table in CREDITS.values()
        ]
        statements = _RECORD_STATEMENTS[name] = (upsert, updates)
    return statements
