"""Database: the SQLAlchemy engine, the table definitions the code queries, and the migrations.

The schema itself is created only by the alembic migrations in `serving/migrations`
(`0001_initial`: api keys, score log, outcomes; `0002_policy`: policy versions; `0004_capture`:
what the service captured of each lead, and the erasure audit; `0005_score_log_dead_letter`:
the records a writer could not store; `0006_exploration`: the score log's exploration flag and
its (lead_id, scored_at) index; `0007_funnel_indexes`: indexes the funnel report probes, which
only the migrations declare; `0008_lead_funnel`: the funnel's per-lead tables). The `Table`
objects below mirror them for queries; a test checks that the two agree.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import overload

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
HEAD_REVISION_0001 = "0001_initial"

metadata = sa.MetaData()

# An auto-incrementing 64-bit id on PostgreSQL; SQLite only auto-increments INTEGER primary keys.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

score_log = sa.Table(
    "score_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(36), nullable=False),
    sa.Column("lead_id", sa.String(200), nullable=False),  # (lead_id, scored_at) below
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("policy_version", sa.Integer, nullable=True),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("grade", sa.String(1), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("api_key_name", sa.String(100), nullable=True),
    # migration 0006_exploration: sent to sales by the policy's exploration rate
    sa.Column("exploration", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    # migration 0012: the moment the lead was scored as of (the request's `as_of`, else the
    # scoring moment); NULL in rows written before it (read `scored_at` there)
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
    # each lead's latest score in one index walk (`serving.trend`); unique (migration 0011), so a
    # batch the writer retries after an in-doubt commit is written once (`serving.score_log`)
    sa.Index("uq_score_log_lead_scored_request", "lead_id", "scored_at", "request_id", unique=True),
)

outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("lead_id", sa.String(200), primary_key=True),
    sa.Column("won", sa.Boolean, nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("amount", sa.Float, nullable=True),
    sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("api_key_name", sa.String(100), nullable=True),
)

# What the service captured of each lead (`serving.capture`): every row once (`dedup_key`, a hash
# of the row's content, unique per lead: campaign and value may be NULL, which a plain composite
# key would not deduplicate), with the moment it happened and the one it first reached the service.
captured_leads = sa.Table(
    "captured_leads",
    metadata,
    sa.Column("lead_id", sa.String(200), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    # migration 0009: a new random value whenever a row of the lead is added or deleted
    sa.Column("write_token", sa.BigInteger, nullable=False, server_default="0"),
)

lead_attributes = sa.Table(
    "lead_attributes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.String(200), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("value", sa.JSON, nullable=True),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("dedup_key", sa.String(32), nullable=False),
    sa.UniqueConstraint("lead_id", "dedup_key", name="uq_lead_attributes_dedup"),
)

lead_touchpoints = sa.Table(
    "lead_touchpoints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.String(200), nullable=False, index=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("activity", sa.String(32), nullable=False),
    sa.Column("campaign", sa.Text, nullable=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("dedup_key", sa.String(32), nullable=False),
    sa.UniqueConstraint("lead_id", "dedup_key", name="uq_lead_touchpoints_dedup"),
)

# The funnel's own tables (`serving.report.funnel_tables`, migration 0008_lead_funnel): facts
# derived from the tables above by the writers, so the funnel report is a GROUP BY over one narrow
# row per lead. `touches` and the first/last channel and campaign are of the touches up to the
# close (every touch while open); NULL channel and campaign with touches > 0: a touch without one.
lead_funnel = sa.Table(
    "lead_funnel",
    metadata,
    sa.Column("lead_id", sa.String(200), primary_key=True),
    sa.Column("captured", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=True, index=True),
    sa.Column("touches", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_channel", sa.String(32), nullable=True),
    sa.Column("first_campaign", sa.Text, nullable=True),
    sa.Column("last_channel", sa.String(32), nullable=True),
    sa.Column("last_campaign", sa.Text, nullable=True),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("score", sa.Integer, nullable=True),
    sa.Column("grade", sa.String(1), nullable=True),
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("exploration", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("won", sa.Boolean, nullable=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("amount", sa.Float, nullable=True),
)


def _credit_table(name: str) -> sa.Table:
    """Linear credit by channel or by campaign: a row per lead and value of its touches up to the
    close, with the lead's share there (`weight` = the value's touches / the lead's; a lead
    without a touch: one row, `touched` false, weight 1), and a copy of the lead's facts, so the
    linear report is a GROUP BY over one table."""
    return sa.Table(
        name,
        metadata,
        sa.Column("lead_id", sa.String(200), nullable=False, index=True),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("touched", sa.Boolean, nullable=False),
        sa.Column("captured", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent", sa.Boolean, nullable=False),
        sa.Column("won", sa.Boolean, nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("amount", sa.Float, nullable=True),
    )


lead_funnel_channels = _credit_table("lead_funnel_channels")
lead_funnel_campaigns = _credit_table("lead_funnel_campaigns")

# Each lead's latest value of each attribute (by name first: a report reads one name).
lead_funnel_attributes = sa.Table(
    "lead_funnel_attributes",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("lead_id", sa.String(200), primary_key=True, index=True),
    sa.Column("value", sa.JSON, nullable=True),
)

# What a writer (score log, capture) could not store because the database refused it (say, a
# NUL byte PostgreSQL cannot hold): the record as JSON text (NULs escaped), the database's error
# without parameters, and the lead when one record is one lead (erasure removes it too).
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("lead_id", sa.String(200), nullable=True, index=True),
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
)

# Right to erasure: who erased which lead when (the lead id only as a hash), never the data.
erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("lead_id_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("erased_by", sa.String(100), nullable=False),
    sa.Column("rows_deleted", sa.JSON, nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for what was stored as UTC: give them their zone back."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (key cache, /readyz) run while the score-log writer writes, across workers.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def json_text(value: object) -> str:
    """JSON columns written with orjson: the score log's reasons of a 1,000-lead request take
    ~25 ms instead of ~100 ms of the writer thread's time (which the next request waits for)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. an integer beyond 64 bits
        return json.dumps(value)


def make_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite set up for several threads and processes."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 5},
            json_serializer=json_text,
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A database that does not answer fails a connection in seconds (503 + Retry-After), not
    # after the operating system's TCP timeout.
    connect_args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        json_serializer=json_text,
        connect_args=connect_args,
        # Errors never echo a row's values (a lead, its reasons, a key name) into logs or answers.
        hide_parameters=True,
    )


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # `%` must be doubled for configparser (URLs with options carry `%3D`).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# any fixed number: the PostgreSQL advisory lock replicas take in turn to migrate
MIGRATION_LOCK = 0x1EAD5C0E


def upgrade_database(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema at `url` to `revision` with the alembic migrations.

    On PostgreSQL, replicas starting together take turns (an advisory lock): alembic does not
    lock, and two replicas creating the same tables at once would fail one of them.
    """
    from alembic import command

    config = alembic_config(url)
    if not url.startswith("postgresql"):
        command.upgrade(config, revision)
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
            try:
                command.upgrade(config, revision)
            finally:
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK}
                )
                connection.commit()
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
