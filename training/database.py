"""Training data from the service's own database: what it captured of each lead, and outcomes.

`read_lead_data(engine, config, as_of)` returns the `LeadData` that `load_lead_data` returns for
files (the same mapping, types, validation and canonical frames, through
`features.data.loading.lead_data_from_frames`), so the rest of training is unchanged.

**Point in time.** A snapshot at moment T may only use what the service had *received* by T,
whenever the CRM says it happened, so a late backfill cannot leak into the past:

- Only rows received by `as_of` (the data's end: the moment of reading, or `training.now`) are
  read; outcomes reported by then.
- Touchpoints keep their true `occurred_at` and carry `received_at`; the featurizer's frame path
  (`features.touchpoint_arrays`) counts a touch in a snapshot only when `received_at <= T` (and,
  as always, `occurred_at < T`). A touch that happened on day 3 but reached the service on day
  10 is absent from the day-7 snapshot and present, as a day-3 touch, in the day-30 one: exactly
  what the service (and the CRM) had at each moment. Shifting late touches to their arrival
  (`occurred_at = max(occurred_at, received_at)`) gives the same membership but wrong ages: a
  CRM that sends the history only with each score request makes every touch "late" until the
  next request, and recency features would learn "it just happened" where serving sees the true
  moments: a train/serve skew (`bench/closed_loop.py`: 3,000 demo leads, ROC AUC 0.6986
  with this rule, the files' own figure, 0.6644 with the shift).
- Attributes: each value counts from `max(changed_at, received_at)`; `attribute_history` holds
  every lead's attributes as known at each of those moments, and `build_examples` gives each
  snapshot the version known at its `as_of` (`features.snapshots.attach_attributes`). `leads`
  holds the latest values (for the feature vocabularies and the data report).
- A snapshot taken before the service first heard of the lead is left out: nothing could have
  been scored then (counted as `skipped_before_received` in the snapshot report).

Labels follow `features.snapshots` as for files. The tables are `serving.db`'s (imported: one
definition of the schema; training may import serving, never the reverse).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from features.data.config import DataConfig, LeadsSource, OutcomesSource, TouchpointsSource
from features.data.loading import LeadData, lead_data_from_frames
from features.data.validation import ValidationReport
from serving.db import (
    captured_leads,
    lead_attributes,
    lead_touchpoints,
    make_engine,
    outcomes,
    score_log,
)
from training.data import TrainingDataError
from training.train import RunConfig, resolve_config

# How findings name the tables (the DataConfig paths are only labels here).
LEADS_TABLE = Path("database:captured_leads+lead_attributes")
TOUCHPOINTS_TABLE = Path("database:lead_touchpoints")
OUTCOMES_TABLE = Path("database:outcomes")

_NULL = object()  # an attribute set to null (kept apart from "no value yet" while pivoting)


def database_config(base: DataConfig | None = None) -> DataConfig:
    """The data config for the capture tables: canonical column names; the attribute settings
    (exclude, types, fact columns, placeholders, vocabulary maps) of `base` (a config file)."""
    tables = {
        "leads": LeadsSource(path=LEADS_TABLE),
        "touchpoints": TouchpointsSource(path=TOUCHPOINTS_TABLE),
        "outcomes": OutcomesSource(path=OUTCOMES_TABLE),
    }
    if base is None:
        return DataConfig(**tables)
    reading = {"label": None, "positive": None, "timezone": None, "dayfirst": None,
               "datetime_format": None}  # fmt: skip
    return base.model_copy(update={**tables, **reading})


def database_run_config(config_file: str | Path | None = None) -> RunConfig:
    """The run config for training from the database: the config file's sections (features,
    training, policy, the attribute settings), the capture tables as the data, and
    `training.now` (the data's end) set to now unless the file sets it."""
    run_config = resolve_config(config_file, leads=LEADS_TABLE)
    run_config.data = database_config(run_config.data)
    if run_config.training.now is None:
        run_config.training.now = datetime.now(UTC)
    return run_config


def read_lead_data(
    database: str | Engine, config: DataConfig | None = None, as_of: datetime | None = None
) -> LeadData:
    """What the service had received by `as_of` (default: now), as canonical lead data with
    point-in-time attributes and touchpoints (see the module docstring). Raises
    `TrainingDataError` naming the database when it cannot be read."""
    as_of = _utc(as_of or datetime.now(UTC))
    config = database_config(config)
    try:
        with _engine(database) as engine:
            tables = _read_tables(engine, as_of)
    except (SQLAlchemyError, ValueError) as error:
        where = _where(database)
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise TrainingDataError(
            f"cannot read the service's database {_masked(where)} ({type(error).__name__}: "
            f"{first}); give the URL the service uses (LEADSCORE_DATABASE_URL, e.g. "
            "postgresql+psycopg://user@host/db or sqlite:///leadscore.db), after the service "
            "has started once on it (its migrations create the capture tables)"
        ) from None
    if tables["leads"].empty:
        raise TrainingDataError(
            f"the service's database holds no captured lead received by {as_of:%Y-%m-%d %H:%M} "
            "UTC: score leads (POST /v1/score) or send events (POST /v1/events) with capture on "
            "(LEADSCORE_CAPTURE_ENABLED), or train from the CRM's files"
        )
    versions = _attribute_versions(tables["leads"], tables["attributes"])
    latest = versions.drop_duplicates("lead_id", keep="last").drop(columns="known_at")
    # touches of leads the loader keeps only, so its rows stay those given, in order
    dated = set(latest.loc[latest["created_at"].notna(), "lead_id"])
    touches = tables["touchpoints"]
    touches = touches[touches["lead_id"].isin(dated)].reset_index(drop=True)
    data = lead_data_from_frames(latest, touches.drop(columns="received_at"), tables["outcomes"],
                                 config)  # fmt: skip
    if data.touchpoints is None or len(data.touchpoints) != len(touches):
        raise TrainingDataError(
            f"{len(touches) - len(data.touchpoints or ())} captured touchpoints could not be "
            "read; see the data report: " + data.report.to_text()
        )
    data.touchpoints["received_at"] = touches["received_at"].to_numpy()
    data.attribute_history = _typed_history(versions, data, config)
    return data


# ---- snapshot ages from the service's traffic (`training.ages_from_traffic`, issue 17) ----------
# A CRM scores leads at the ages its own workflow brings (on creation, at each touchpoint,
# nightly); the model should learn at those ages. The service knows them: each score's moment
# less the lead's captured creation moment. A request scored with an explicit `as_of` (a replay
# or backfill of old leads) counts at the age it was sent at, not the `as_of` one: the score log
# keeps the moment of scoring only.
TRAFFIC_SAMPLE = 100_000  # the most recent scores read (the scored_at index's order)
MIN_TRAFFIC_SCORES = 200  # fewer: the configured ages stay
# the ages taken: the traffic's quantiles, the same age once (each age then as likely as the
# others, whatever share of the traffic repeated it)
TRAFFIC_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
MAX_TRAFFIC_AGE_DAYS = 90.0  # older scores count at this age (a snapshot age plus the horizon
# is how old a lead must be to be held out: older ages leave fewer recent leads to learn from)
TRAFFIC_SNAPSHOTS_PER_LEAD = 3  # each lead at 3 of the ages: rows as for 3 fixed ages


@dataclass(frozen=True)
class TrafficAges:
    """The ages (days) at which the service scored leads: `ages` the snapshot ages they give
    (empty when `scores` < MIN_TRAFFIC_SCORES), `older` the share of scores past the cap."""

    scores: int
    ages: tuple[float, ...]
    older: float

    def to_text(self, configured: tuple[float, ...]) -> str:
        kept = ", ".join(f"{a:g}" for a in configured)
        if not self.ages:
            return (
                f"snapshot ages: the configured {kept} days; the score log holds {self.scores} "
                f"scores of captured leads with a creation moment, fewer than the "
                f"{MIN_TRAFFIC_SCORES} training.ages_from_traffic needs"
            )
        older = (
            f"; {self.older:.0%} were older than {MAX_TRAFFIC_AGE_DAYS:g} days and count at "
            f"{MAX_TRAFFIC_AGE_DAYS:g}"
            if self.older
            else ""
        )
        return (
            f"snapshot ages from the service's traffic: {', '.join(f'{a:g}' for a in self.ages)} "
            f"days (quantiles of the ages of the {self.scores:,} most recent scores{older})"
        )


def traffic_ages(database: str | Engine, as_of: datetime | None = None) -> TrafficAges:
    """The ages at which the service scored leads up to `as_of`: the most recent
    `TRAFFIC_SAMPLE` scores of leads whose creation moment was captured, each at the moment it
    was scored as of (the request's `as_of`), their `TRAFFIC_QUANTILES` (capped at
    `MAX_TRAFFIC_AGE_DAYS`, in half days, at least half a day)."""
    as_of = _utc(as_of or datetime.now(UTC))
    # the moment each lead was scored as of: a replayed or backfilled score is at the age it
    # was asked about, not at today's (rows logged before migration 0012: the scoring moment)
    scored_as_of = sa.func.coalesce(score_log.c.as_of, score_log.c.scored_at)
    query = (
        sa.select(scored_as_of, captured_leads.c.created_at)
        .join(captured_leads, captured_leads.c.lead_id == score_log.c.lead_id)
        .where(score_log.c.scored_at <= as_of, captured_leads.c.created_at.is_not(None))
        .order_by(score_log.c.scored_at.desc())
        .limit(TRAFFIC_SAMPLE)
    )
    try:
        with _engine(database) as engine, engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as error:
        where = _where(database)
        raise TrainingDataError(
            f"cannot read the score log of {_masked(where)} for training.ages_from_traffic "
            f"({type(error).__name__}); give the URL the service uses, or set "
            "training.ages_from_traffic to false"
        ) from None
    days = np.array(
        [(_utc(scored) - _utc(created)).total_seconds() / 86_400 for scored, created in rows],
        dtype=float,
    )
    days = days[days >= 0]  # a creation moment after the score: a CRM's backdated record
    if days.size < MIN_TRAFFIC_SCORES:
        return TrafficAges(int(days.size), (), 0.0)
    older = float((days > MAX_TRAFFIC_AGE_DAYS).mean())
    quantiles = np.quantile(np.minimum(days, MAX_TRAFFIC_AGE_DAYS), TRAFFIC_QUANTILES)
    ages = tuple(sorted({max(0.5, round(float(q) * 2) / 2) for q in quantiles}))
    return TrafficAges(int(days.size), ages, older)


def apply_traffic_ages(run_config: RunConfig, database: str | Engine) -> str | None:
    """With `training.ages_from_traffic`, the run's snapshot ages from the service's traffic
    (`traffic_ages` up to the data's end); what was done, in words (None: not asked for)."""
    if not run_config.training.ages_from_traffic:
        return None
    features = run_config.features
    traffic = traffic_ages(database, run_config.training.now)
    if traffic.ages:
        update: dict[str, Any] = {"snapshot_ages_days": traffic.ages}
        if features.snapshots_per_lead is None and len(traffic.ages) > TRAFFIC_SNAPSHOTS_PER_LEAD:
            update["snapshots_per_lead"] = TRAFFIC_SNAPSHOTS_PER_LEAD
        run_config.features = features.model_copy(update=update)
    return traffic.to_text(tuple(features.snapshot_ages_days))


@contextmanager
def _engine(database: str | Engine) -> Iterator[Engine]:
    """The engine of `database` (a URL, or an engine as given); one made here is disposed after."""
    if not isinstance(database, str):
        yield database
        return
    engine = make_engine(database)
    try:
        yield engine
    finally:
        engine.dispose()


def _where(database: str | Engine) -> str:
    return database if isinstance(database, str) else str(database.url)


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all: say so as given
        return repr(url)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _moments(values: pd.Series) -> pd.Series:
    """UTC datetime64[ns] from what the driver returns (naive UTC on SQLite)."""
    return pd.to_datetime(values, utc=True).dt.as_unit("ns")


def _read_tables(engine: Engine, as_of: datetime) -> dict[str, pd.DataFrame]:
    queries = {
        "leads": sa.select(
            captured_leads.c.lead_id, captured_leads.c.created_at, captured_leads.c.received_at
        ).where(captured_leads.c.received_at <= as_of),
        "attributes": sa.select(lead_attributes).where(lead_attributes.c.received_at <= as_of),
        "touchpoints": sa.select(lead_touchpoints).where(lead_touchpoints.c.received_at <= as_of),
        "outcomes": sa.select(outcomes).where(outcomes.c.reported_at <= as_of),
    }
    frames = {}
    with engine.connect() as connection:
        for name, query in queries.items():
            result = connection.execute(query)
            frames[name] = pd.DataFrame(result.all(), columns=list(result.keys()))
    leads = frames["leads"]
    leads["lead_id"] = leads["lead_id"].astype(str)
    for column in ("created_at", "received_at"):
        leads[column] = _moments(leads[column])
    attributes = frames["attributes"]
    attributes["known_at"] = _moments(
        pd.concat([attributes["changed_at"], attributes["received_at"]], axis=1).max(axis=1)
    ) if len(attributes) else pd.Series([], dtype="datetime64[ns, UTC]")  # fmt: skip
    touches = frames["touchpoints"]
    occurred, received = _moments(touches["occurred_at"]), _moments(touches["received_at"])
    touchpoints = pd.DataFrame({
        "lead_id": touches["lead_id"].astype(str), "occurred_at": occurred,
        "channel": touches["channel"], "activity": touches["activity"],
        "campaign": touches["campaign"], "value": pd.to_numeric(touches["value"]),
        "received_at": received,
    })  # fmt: skip
    result_outcomes = pd.DataFrame({
        "lead_id": frames["outcomes"]["lead_id"].astype(str),
        "closed_at": _moments(frames["outcomes"]["closed_at"]),
        "won": frames["outcomes"]["won"].astype(bool),
        "amount": pd.to_numeric(frames["outcomes"]["amount"]),
    })  # fmt: skip
    return {"leads": leads, "attributes": attributes, "touchpoints": touchpoints,
            "outcomes": result_outcomes}  # fmt: skip


def _null_marked(value: Any) -> Any:
    """An emptied value as `_NULL` (pandas may have read JSON null as None or NaN)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return _NULL
    return value


def _attribute_versions(leads: pd.DataFrame, attributes: pd.DataFrame) -> pd.DataFrame:
    """One row per lead and moment its attributes changed (from its first arrival on): lead_id,
    created_at, known_at, then every attribute's value as known from that moment; sorted by lead
    and moment, so each lead's last row is its latest values."""
    first = pd.DataFrame({"lead_id": leads["lead_id"], "known_at": leads["received_at"]})
    if len(attributes):
        attributes = attributes[attributes["lead_id"].isin(set(leads["lead_id"]))]
        changes = attributes.sort_values(["lead_id", "known_at", "changed_at", "id"], kind="stable")
        changes = changes.assign(value=changes["value"].map(_null_marked))
        changes = changes.drop_duplicates(["lead_id", "known_at", "name"], keep="last")
        wide = changes.pivot(index=["lead_id", "known_at"], columns="name", values="value")
        first_seen = attributes.groupby("name")["id"].min().sort_values(kind="stable").index
        wide = wide[list(first_seen)]  # the order the service first heard of them
        wide.columns = [str(c) for c in wide.columns]
        wide = wide.reset_index()
        # no earlier than the lead's first arrival (an attribute cannot come before its lead)
        arrival = first.set_index("lead_id")["known_at"]
        wide["known_at"] = wide["known_at"].where(
            wide["known_at"] >= wide["lead_id"].map(arrival), wide["lead_id"].map(arrival)
        )
        versions = pd.concat([first, wide], ignore_index=True)
    else:
        versions = first
    versions = versions.sort_values(["lead_id", "known_at"], kind="stable").reset_index(drop=True)
    names = [c for c in versions.columns if c not in ("lead_id", "known_at")]
    if names:
        filled = versions.groupby("lead_id", sort=False)[names].ffill()
        versions[names] = filled.map(lambda v: None if v is _NULL else v)
    versions = versions.drop_duplicates(["lead_id", "known_at"], keep="last")
    created = leads.set_index("lead_id")["created_at"]
    versions.insert(1, "created_at", versions["lead_id"].map(created))
    return versions.reset_index(drop=True)


def _typed_history(versions: pd.DataFrame, data: LeadData, config: DataConfig) -> pd.DataFrame:
    """The versions with the attribute columns and types of `data.leads` (read by the same
    code, with the types it chose forced, on a throw-away report)."""
    columns = [c for c in data.leads.columns if c not in ("lead_id", "created_at")]
    raw = versions.drop(columns=["lead_id", "known_at"]).assign(lead_id=[
        str(i) for i in range(len(versions))])  # fmt: skip
    forced = config.model_copy(
        update={"types": {**config.types, **data.attribute_types}, "touchpoints": None,
                "outcomes": None}
    )  # fmt: skip
    typed = lead_data_from_frames(raw, None, None, forced, ValidationReport()).leads
    rows = typed["lead_id"].astype(int).to_numpy()
    history: dict[str, Any] = {
        "lead_id": versions["lead_id"].to_numpy()[rows],
        "known_at": versions["known_at"].to_numpy()[rows],
    }
    for column in columns:
        missing = np.full(len(rows), np.nan, dtype=object)
        history[column] = typed[column].to_numpy() if column in typed else missing
    frame = pd.DataFrame(history)
    frame["known_at"] = pd.to_datetime(frame["known_at"], utc=True).dt.as_unit("ns")
    for column in columns:
        frame[column] = frame[column].astype(data.leads[column].dtype)
    return frame
