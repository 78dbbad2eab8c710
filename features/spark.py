"""Features, training snapshots and batch scoring on Spark, with the same code as on one machine.

Spark only moves rows: leads are put in buckets by a hash of `lead_id`, each bucket's leads and
all their touchpoints (or outcomes) meet in one pandas call (`cogroup(...).applyInPandas`) of the
existing code, `LeadFeaturizer.transform` (the numpy core), `build_snapshots`, and scoring runs
`LeadScorer.score_frame` over batches of the pyfunc input (`mapInPandas`): leads, `as_of` and
their touchpoints as a JSON list, the frame `mlflow.pyfunc.spark_udf` takes too. A lead's row
depends only on that lead, so the rows are the pandas path's rows bit for bit (timestamps to the
microsecond: Spark's resolution).

Timestamps cross the boundary as microseconds since the epoch (`_micros_of_timestamps`,
`F.timestamp_micros`), never as the naive local times PySpark hands pandas: in the hour a session
zone's clocks go back, two moments share one local time. pyspark is an optional dependency
(`pip install 'leadscore[spark]'`, and Java 17); this module imports it only when called.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.config import FeatureConfig
from features.data.values import to_boolean
from features.featurizer import LeadFeaturizer
from features.snapshots import SNAPSHOT_COLUMNS, build_snapshots

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from features.model.scorer import LeadScorer
    from features.policy.applied import AppliedPolicy

SPARK_HINT = (
    "install PySpark and Java 17: `pip install 'leadscore[spark]'` (`make install` does) and "
    "`apt-get install openjdk-17-jre-headless` (or set JAVA_HOME to a Java 17 runtime)"
)
PANDAS3_WARNING = "PySpark does not yet fully support pandas"
BUCKET = "_leadscore_bucket"
LEADS_PER_BUCKET = 20_000  # one pandas call's share: small enough for a worker's memory
# microseconds in the JSON of touchpoints: Spark's own resolution, so no moment is rounded
JSON_TIMESTAMP = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
TOUCHPOINT_COLUMNS = ("lead_id", "occurred_at", "channel", "activity", "campaign", "value")
SCORE_COLUMNS = (
    ("lead_id", "string"),
    ("probability", "double"),
    ("score", "bigint"),
    ("grade", "string"),
    ("decision", "string"),
    ("reasons_for", "string"),
    ("reasons_against", "string"),
    ("hard_rule", "string"),
    ("exploration", "boolean"),
    ("policy", "string"),
)


def score_columns(scorer: LeadScorer) -> tuple[tuple[str, str], ...]:
    """The columns (name, Spark type) `score_batch` returns for `scorer`: `SCORE_COLUMNS`, then
    those of the model's other parts as `leadscore score` writes them (`LeadScorer.outlook`):
    fit and engagement with the grid, confidence, segment, deal value, time to close."""
    more: list[tuple[str, str]] = []
    if scorer.segments is not None:
        more.append(("segment", "string"))
    if scorer.subscores is not None:
        more += [
            ("fit_probability", "double"),
            ("engagement_probability", "double"),
            ("fit_grade", "string"),
            ("engagement_level", "bigint"),
            ("grid", "string"),
        ]
    if scorer.confidence is not None:
        more += [("confidence", "string"), ("similar_leads", "bigint")]
    if scorer.value is not None:
        more += [
            ("expected_amount", "double"),
            ("amount_low", "double"),
            ("amount_high", "double"),
            ("expected_value", "double"),
            ("amount_reasons", "string"),
        ]
    if scorer.timing is not None:
        more += [(f"win_within_{int(h)}d", "double") for h in scorer.timing.horizons]
        more.append(("median_days_to_close", "double"))
    return (*SCORE_COLUMNS, *more)


_SPARK_DTYPES = {"bigint": "int64", "double": "float64", "boolean": "bool"}


class SparkUnavailable(RuntimeError):
    """PySpark or Java is missing; the message says what to install."""


def spark_session(
    master: str | None = "local[*]",
    app_name: str = "leadscore",
    shuffle_partitions: int | None = None,
    ui: bool = False,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """A SparkSession in UTC with Arrow on (`master=None`: whatever spark-submit configured).
    Raises SparkUnavailable naming what to install when PySpark or Java is missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(f"PySpark is not installed: {SPARK_HINT}") from None
    # the workers run this interpreter (its packages), unless PYSPARK_PYTHON says otherwise
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # PySpark 4.3 warns on every worker that it "does not yet fully support pandas >= 3.0.0"; the
    # one gap this code meets (pandas 3 string columns) is handled in `_for_spark`, and the tests
    # check the results bit for bit under the pinned pandas, so the workers need not repeat it
    os.environ.setdefault("PYTHONWARNINGS", f"ignore:{PANDAS3_WARNING}:FutureWarning")
    warnings.filterwarnings("ignore", message=PANDAS3_WARNING, category=FutureWarning)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": str(ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        **({"spark.sql.shuffle.partitions": str(shuffle_partitions)} if shuffle_partitions else {}),
        **(conf or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - Java missing surfaces as several error types
        text = str(exc)
        if "JAVA" in text.upper() or isinstance(exc, FileNotFoundError):
            raise SparkUnavailable(
                f"Spark cannot start ({text.strip().splitlines()[0][:200]}): {SPARK_HINT}"
            ) from None
        raise
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark_path(path: Any) -> str:
    """A path or URL for Spark: `Path("s3a://b/k")` collapses to `s3a:/b/k`; give it back its
    `//`. `file:` URLs stay as they are; a local path is made absolute here (Spark's JVM keeps
    the working directory it started in, not this process's)."""
    text = str(path)
    scheme, sep, rest = text.partition(":/")
    if sep and scheme.isidentifier():
        if scheme != "file" and not rest.startswith("/"):
            return f"{scheme}://{rest}"
        return text
    return os.path.abspath(text)


# --------------------------------------------------------------------------------------------
# Buckets: all of a lead's rows in one pandas call


def bucket_count(spark: SparkSession, leads: DataFrame, buckets: int | None = None) -> int:
    """How many buckets (one task each): given, or enough that each holds about LEADS_PER_BUCKET
    leads, and at least two per core Spark has."""
    if buckets is not None:
        if buckets < 1:
            raise ValueError(f"buckets={buckets}: give at least 1")
        return buckets
    cores = spark.sparkContext.defaultParallelism
    return max(2 * cores, math.ceil(leads.count() / LEADS_PER_BUCKET))


def partition_keys(spark: SparkSession, buckets: int) -> list[int]:
    """For each bucket, a key that Spark's hash partitioning into `buckets` partitions sends to
    the bucket's own partition: bucket i's rows all land in partition i, one bucket per task.
    (Hashing the bucket numbers 0..n-1 themselves sends some partitions several buckets and
    others none: one task then did up to 8 times another's work.) Spark's own hash decides,
    so the keys hold for the Spark that runs them; were they ever off, only the balance would
    suffer, never a result: rows are grouped by key."""
    from pyspark.sql import functions as F

    keys: dict[int, int] = {}
    span = 64 * buckets  # a partition has no key among them with odds (1 - 1/n)^(64n) < e^-64
    while len(keys) < buckets:
        candidates = spark.range(span).select(
            F.col("id"), F.pmod(F.hash(F.col("id")), F.lit(buckets)).alias("partition")
        )
        found = candidates.groupBy("partition").agg(F.min("id").alias("key")).collect()
        keys = {int(row["partition"]): int(row["key"]) for row in found}
        span *= 2
    return [keys[i] for i in range(buckets)]


def with_bucket(frame: DataFrame, keys: Sequence[int]) -> DataFrame:
    """`frame` with its leads' bucket key (a hash of `lead_id`), in one partition per bucket:
    both sides of a cogroup so partitioned meet without another shuffle."""
    from pyspark.sql import functions as F

    index = F.pmod(F.xxhash64(F.col("lead_id").cast("string")), F.lit(len(keys)))
    key_of = F.array(*[F.lit(key).cast("long") for key in keys])
    bucketed = frame.withColumn(BUCKET, F.element_at(key_of, (index + 1).cast("int")))
    return bucketed.repartition(len(keys), BUCKET)


def _column(name: str) -> Any:
    """The column `name`, a dot or a space in it part of the name."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _micros_of_timestamps(frame: DataFrame) -> tuple[DataFrame, tuple[str, ...]]:
    """`frame` with each timestamp column as microseconds since the epoch (a long), and those
    columns' names. PySpark hands pandas a timestamp as a naive local time of the session's zone,
    and in the hour the zone's clocks go back two moments share one; a count of microseconds is
    one moment in any zone. (A timestamp without a zone is read in the session's zone first, as
    Spark's own cast reads it.)"""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType, TimestampType

    names = tuple(
        field.name
        for field in frame.schema.fields
        if isinstance(field.dataType, (TimestampType, TimestampNTZType))
    )
    columns = [
        F.unix_micros(_column(name).cast("timestamp")).alias(name)
        if name in names
        else _column(name)
        for name in frame.columns
    ]
    return frame.select(*columns), names


def _from_micros(frame: pd.DataFrame, instants: Iterable[str]) -> pd.DataFrame:
    """The columns `_micros_of_timestamps` sent as microseconds since the epoch, as UTC moments."""
    for column in instants:
        if column in frame.columns:
            micros = frame[column].astype("Int64")  # with a null, pandas gets them as float64
            frame[column] = pd.to_datetime(micros, unit="us", utc=True)
    return frame


def to_pandas(frame: DataFrame) -> pd.DataFrame:
    """`frame` brought to this machine, its timestamps as UTC moments. They travel as
    microseconds since the epoch: `toPandas` gives naive local times of the session's zone
    (without Arrow by way of this process's zone), `collect` of this process's zone, and either
    gives one local time for two moments in the hour the clocks go back. Timestamps without a
    zone (TIMESTAMP_NTZ) stay the naive times they are: no zone reads them."""
    from pyspark.sql import functions as F

    instants = [name for name, kind in frame.dtypes if kind == "timestamp"]
    micros = frame.withColumns({name: F.unix_micros(_column(name)) for name in instants})
    return _from_micros(micros.toPandas(), instants)


def _utc(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """`columns` (created_at, as_of...) as UTC moments: moments as they are, text as ISO 8601."""
    for column in columns:
        if column in frame.columns:
            moments = pd.to_datetime(frame[column], utc=True, format="ISO8601")
            frame[column] = moments.dt.as_unit("ns")
    return frame


def _micros(values: pd.Series) -> pd.arrays.IntegerArray:
    """UTC moments as microseconds since the epoch (null where missing), for a long column that
    `F.timestamp_micros` makes the same moments again in any session zone."""
    moments = pd.to_datetime(values, utc=True).dt.as_unit("us")
    return pd.arrays.IntegerArray(moments.array.asi8, moments.isna().to_numpy())


def _for_spark(frame: pd.DataFrame) -> pd.DataFrame:
    """pandas 3's string columns as plain objects: PySpark 4.3's Arrow writer cannot take the
    chunked Arrow arrays they hold ("Cannot convert pyarrow.lib.ChunkedArray")."""
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.StringDtype):
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
    return frame


# --------------------------------------------------------------------------------------------
# Feature table


def feature_table(
    spark: SparkSession,
    rows: DataFrame,
    touchpoints: DataFrame | None,
    featurizer: LeadFeaturizer,
    buckets: int | None = None,
) -> DataFrame:
    """One row per row of `rows` (lead_id, attributes, and created_at/as_of when the featurizer
    uses time): `lead_id`, `as_of` (when present) and every feature of `featurizer` as a double,
    computed by `featurizer.transform` on each bucket's rows with their leads' touchpoints."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    featurizer._check_fitted()
    if "lead_id" not in rows.columns:
        raise ValueError("the rows have no 'lead_id' column; name the lead id column lead_id")
    names = [str(n) for n in featurizer.get_feature_names_out()]
    keep_as_of = "as_of" in rows.columns
    fields = [StructField("lead_id", StringType(), False)]
    if keep_as_of:
        fields.append(StructField("as_of", LongType(), True))  # microseconds: a timestamp below
    fields += [StructField(name, DoubleType(), True) for name in names]
    schema = StructType(fields)
    keys = partition_keys(spark, bucket_count(spark, rows, buckets))
    rows, row_instants = _micros_of_timestamps(rows)
    rows = with_bucket(rows, keys)
    touch_instants: tuple[str, ...] = ()
    if touchpoints is not None and featurizer.uses_touchpoints_:
        touchpoints, touch_instants = _micros_of_timestamps(_touchpoint_columns(touchpoints))

    def features_of_bucket(leads: pd.DataFrame, touches: pd.DataFrame) -> pd.DataFrame:
        leads = _from_micros(leads.drop(columns=[BUCKET]), row_instants)
        leads = _utc(leads, ("created_at", "as_of"))
        leads["lead_id"] = leads["lead_id"].astype(str)
        X = featurizer.transform(leads, _touchpoints_frame(touches, touch_instants))
        out = pd.DataFrame(X, columns=pd.Index(names, dtype=object))
        out.insert(0, "lead_id", leads["lead_id"].to_numpy())
        if keep_as_of:
            out.insert(1, "as_of", _micros(leads["as_of"]))
        return _for_spark(out)

    if touchpoints is None or not featurizer.uses_touchpoints_:
        table = rows.groupBy(BUCKET).applyInPandas(
            lambda leads: features_of_bucket(leads, pd.DataFrame()), schema
        )
    else:
        table = (
            rows.groupBy(BUCKET)
            .cogroup(with_bucket(touchpoints, keys).groupBy(BUCKET))
            .applyInPandas(features_of_bucket, schema)
        )
    return table.withColumn("as_of", F.timestamp_micros("as_of")) if keep_as_of else table


def _touchpoint_columns(touchpoints: DataFrame) -> DataFrame:
    missing = [c for c in ("lead_id", "occurred_at", "channel", "activity") if c not in touchpoints.columns]  # fmt: skip
    if missing:
        raise ValueError(
            f"the touchpoints lack column(s) {missing}; expected lead_id, occurred_at, channel, "
            "activity and optionally campaign, value, received_at"
        )
    keep = [*TOUCHPOINT_COLUMNS, "received_at"]
    return touchpoints.select(*[c for c in keep if c in touchpoints.columns])


def _touchpoints_frame(touches: pd.DataFrame, instants: Iterable[str]) -> pd.DataFrame | None:
    if not len(touches):
        return None
    touches = _from_micros(touches.drop(columns=[BUCKET]), instants)
    touches = _utc(touches, ("occurred_at", "received_at"))
    touches["lead_id"] = touches["lead_id"].astype(str)
    return touches


# --------------------------------------------------------------------------------------------
# Training snapshots


def training_snapshots(
    spark: SparkSession,
    leads: DataFrame,
    outcomes: DataFrame | None,
    config: FeatureConfig | None = None,
    now: datetime | pd.Timestamp | str | None = None,
    buckets: int | None = None,
) -> DataFrame:
    """`build_snapshots` per bucket of leads with their outcomes: lead_id, created_at, as_of,
    snapshot_age_days, label. `now` is fixed once here (default: the current time), so every
    bucket labels with the same moment."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    config = config if config is not None else FeatureConfig()
    moment = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    schema = StructType([
        StructField("lead_id", StringType(), False),
        StructField("created_at", LongType(), True),  # microseconds: timestamps below
        StructField("as_of", LongType(), True),
        StructField("snapshot_age_days", DoubleType(), True),
        StructField("label", LongType(), True),
    ])  # fmt: skip
    keys = partition_keys(spark, bucket_count(spark, leads, buckets))
    leads, lead_instants = _micros_of_timestamps(leads.select("lead_id", "created_at"))
    leads = with_bucket(leads, keys)
    outcome_instants: tuple[str, ...] = ()
    if outcomes is not None:
        outcomes, outcome_instants = _micros_of_timestamps(
            outcomes.select("lead_id", "closed_at", "won")
        )

    def snapshots_of_bucket(part: pd.DataFrame, closed: pd.DataFrame) -> pd.DataFrame:
        part = _utc(_from_micros(part.drop(columns=[BUCKET]), lead_instants), ("created_at",))
        part["lead_id"] = part["lead_id"].astype(str)
        outcome_frame = None
        if len(closed):
            outcome_frame = _from_micros(closed.drop(columns=[BUCKET]), outcome_instants)
            outcome_frame = _utc(outcome_frame, ("closed_at",))
            outcome_frame["lead_id"] = outcome_frame["lead_id"].astype(str)
            # "yes"/"won"/1 read the one way the data contract reads them; unreadable: not won
            won, _ = to_boolean(outcome_frame["won"])
            outcome_frame["won"] = won.fillna(False).astype(bool)
        snapshots, _ = build_snapshots(part, outcome_frame, config, moment)
        out = snapshots[list(SNAPSHOT_COLUMNS)].copy()
        for column in ("created_at", "as_of"):
            out[column] = _micros(out[column])
        return _for_spark(out)

    if outcomes is None:
        snapshots = leads.groupBy(BUCKET).applyInPandas(
            lambda part: snapshots_of_bucket(part, pd.DataFrame()), schema
        )
    else:
        snapshots = (
            leads.groupBy(BUCKET)
            .cogroup(with_bucket(outcomes, keys).groupBy(BUCKET))
            .applyInPandas(snapshots_of_bucket, schema)
        )
    return snapshots.withColumns({c: F.timestamp_micros(c) for c in ("created_at", "as_of")})


def with_attributes(snapshots: DataFrame, leads: DataFrame) -> DataFrame:
    """Snapshot rows with their leads' attributes (`attach_attributes` as a Spark join)."""
    attributes = leads.drop("created_at") if "created_at" in leads.columns else leads
    return snapshots.join(attributes, on="lead_id", how="left")


# --------------------------------------------------------------------------------------------
# Scoring: the pyfunc input, scored in batches by the project's scorer (or by spark_udf)


def pyfunc_input(
    leads: DataFrame,
    touchpoints: DataFrame | None,
    as_of: datetime | pd.Timestamp | str | None = None,
) -> DataFrame:
    """Leads in the pyfunc's input format: attribute columns, `created_at`, `as_of` (the leads'
    own column, else `as_of`, else now: one moment for every lead) and `touchpoints`, a JSON list
    of each lead's touchpoints before `as_of` (an empty list when none)."""
    from pyspark.sql import functions as F

    if "lead_id" not in leads.columns:
        raise ValueError("the leads have no 'lead_id' column; name the lead id column lead_id")
    leads = leads.withColumn("lead_id", F.col("lead_id").cast("string"))
    if "as_of" not in leads.columns:
        moment = pd.Timestamp.now(tz="UTC") if as_of is None else pd.Timestamp(as_of)
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
        leads = leads.withColumn(
            "as_of", F.to_timestamp(F.lit(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
        )
    if touchpoints is None:
        return leads.withColumn("touchpoints", F.lit("[]"))
    touches = _touchpoint_columns(touchpoints).withColumn(
        "lead_id", F.col("lead_id").cast("string")
    )
    fields = [c for c in TOUCHPOINT_COLUMNS[1:] if c in touches.columns]
    earlier = (
        touches.alias("t")
        .join(leads.select("lead_id", F.col("as_of").alias("_as_of")), on="lead_id")
        .where(F.col("occurred_at") < F.col("_as_of"))
    )  # what the API is sent: the past only
    nested = earlier.groupBy("lead_id").agg(
        F.to_json(F.collect_list(F.struct(*fields)), {"timestampFormat": JSON_TIMESTAMP}).alias(
            "touchpoints"
        )
    )
    return leads.join(nested, on="lead_id", how="left").withColumn(
        "touchpoints", F.coalesce(F.col("touchpoints"), F.lit("[]"))
    )


def score_leads(
    spark: SparkSession,
    leads: DataFrame,
    touchpoints: DataFrame | None,
    scorer: LeadScorer,
    policy: AppliedPolicy,
    as_of: datetime | pd.Timestamp | str | None = None,
    explain: bool = True,
) -> DataFrame:
    """One row per lead, as `leadscore score` writes it (lead_id, probability, score, grade,
    decision, reasons_for, reasons_against as text, hard_rule, exploration, policy, then the
    model's value, timing, fit/engagement, grid and confidence columns: `score_columns`),
    decided by `policy` (the policy in force: see `training.score.policy_in_force`; ranked by
    expected value when it says so)."""
    frame = pyfunc_input(leads, touchpoints if scorer.featurizer.uses_touchpoints_ else None, as_of)
    frame, instants = _micros_of_timestamps(frame)
    schema = ", ".join(f"`{name}` {kind}" for name, kind in score_columns(scorer))

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield score_batch(scorer, batch, policy, instants, explain)

    return frame.mapInPandas(score_batches, schema)


def score_batch(
    scorer: LeadScorer,
    batch: pd.DataFrame,
    policy: AppliedPolicy,
    instants: Iterable[str] = (),
    explain: bool = True,
) -> pd.DataFrame:
    """One batch of the pyfunc input scored like `leadscore score` scores a file. `instants`:
    the columns Spark sent as microseconds since the epoch (`_micros_of_timestamps`); the
    others are read as they come (created_at and as_of as text too, ISO 8601), and the
    touchpoints' times as the JSON writes them, with their offset."""
    from features.model.artifact import frame_touchpoints
    from features.model.reasons import format_reasons

    columns = score_columns(scorer)
    if not len(batch):
        return pd.DataFrame(
            {name: pd.Series([], dtype=_SPARK_DTYPES.get(kind, object)) for name, kind in columns}
        )
    frame = _utc(_from_micros(batch.copy(), instants), ("created_at", "as_of"))
    frame["lead_id"] = frame["lead_id"].astype(str)
    touches = frame_touchpoints(frame) if scorer.featurizer.uses_touchpoints_ else None
    frame = frame.drop(columns=["touchpoints"])
    for column in scorer.featurizer.attributes_.columns_:
        if column["column"] not in frame.columns and column["column"] != "created_at":
            frame[column["column"]] = None
    if scorer.featurizer.timestamped_ and "created_at" not in frame.columns:
        frame["created_at"] = pd.NaT
    scored = scorer.score_frame(
        frame, touches, explain=explain, policy=policy.policy, policy_version=policy.version
    )
    reasons: Sequence[Any] = [None] * len(scored)
    out = scored[["lead_id", "probability", "score", "grade", "decision"]].copy()
    out["score"] = out["score"].astype(np.int64)
    out["reasons_for"] = [format_reasons(r) for r in scored["reasons_for"]] if explain else reasons
    out["reasons_against"] = (
        [format_reasons(r) for r in scored["reasons_against"]] if explain else reasons
    )
    out["hard_rule"] = scored["hard_rule"]
    out["exploration"] = scored["exploration"].astype(bool)
    out["policy"] = policy.label
    for name, kind in columns[len(SCORE_COLUMNS) :]:
        if name == "amount_reasons":  # plain text, as `leadscore score` writes them
            out[name] = ["; ".join(r["text"] for r in rs) for rs in scored[name]]
        elif kind in _SPARK_DTYPES:
            out[name] = scored[name].to_numpy(dtype=_SPARK_DTYPES[kind])
        else:
            out[name] = scored[name].astype(object)
    return _for_spark(out)


# --------------------------------------------------------------------------------------------
# Reading tables: Parquet from any path Spark can read, in the canonical column names


class SparkInputError(ValueError):
    """A table cannot be read or lacks a column; the message names the option and the fix."""


def read_table(
    spark: SparkSession,
    path: Any,
    option: str,
    columns: dict[str, str | None],
    timestamps: Sequence[str] = (),
    required: Sequence[str] = ("lead_id",),
    zone: str | None = None,
) -> DataFrame:
    """The Parquet file or folder at `path` (local, hdfs://, s3a://, ...) with its columns
    renamed to the canonical names (`columns`: canonical name -> the file's name, None for an
    absent optional column) and `timestamps` read as moments: ISO text is parsed, text with an
    offset keeps its moment, and text without one, like every timestamp column without a zone
    (TIMESTAMP_NTZ), is local times in `zone` (the config's `timezone`; UTC when unset), read
    as the files path reads them (`_zoneless_in_zone`), whatever the session's zone."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    location = spark_path(path)
    try:
        frame = spark.read.parquet(location)
    except AnalysisException as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise SparkInputError(
            f"{option} {location}: Spark cannot read it as Parquet ({first}); give a Parquet "
            "file or folder that Spark can reach (a local path, hdfs://..., s3a://...)"
        ) from None
    renames = {}
    for canonical, source in columns.items():
        if source is None or source == canonical:
            continue
        if source not in frame.columns:
            raise SparkInputError(
                f"{option} {location}: no column {source!r} (mapped to {canonical}); it has "
                f"{frame.columns[:12]}: fix the column mapping in the config file or options"
            )
        renames[source] = canonical
    for source, canonical in renames.items():
        frame = frame.withColumnRenamed(source, canonical)
    for canonical in required:
        if canonical not in frame.columns:
            raise SparkInputError(
                f"{option} {location}: no column {canonical!r}; it has {frame.columns[:12]}: "
                "name the column in the config file or with the matching option (e.g. --id)"
            )
    frame = frame.withColumn("lead_id", F.col("lead_id").cast("string"))
    kinds = dict(frame.dtypes)
    for column in timestamps:
        if kinds.get(column) == "string":
            text = F.trim(F.col(column))
            with_offset = text.rlike(r"(?i)(z|[+-][0-9]{2}(:?[0-9]{2})?)$")
            # the zoneless ones only: the pandas function (another zone) sees every row
            wall_clock = F.when(~with_offset, F.to_timestamp_ntz(text))
            moment = F.when(with_offset, F.to_timestamp(text)).otherwise(
                _zoneless_in_zone(wall_clock, zone)
            )
            frame = frame.withColumn(column, moment)
    for column, kind in frame.dtypes:  # date attributes too, as the files path reads them
        if kind == "timestamp_ntz":
            frame = frame.withColumn(column, _zoneless_in_zone(_column(column), zone))
    return frame


def _zoneless_in_zone(wall_clock: Any, zone: str | None) -> Any:
    """A zoneless time (TIMESTAMP_NTZ) as the moment it is in `zone` (UTC when None), exactly
    as the files path reads it (`readers.in_zone`), in any session zone. Its digits travel as
    microseconds (`unix_micros` of a zoneless time reads them as UTC's, no zone involved): in
    UTC they are the moment; in another zone the files path's own function places them, so a
    time the clocks repeat is missing and one they skip moves past the jump, as there. Spark's
    cast to a timestamp reads them as the session zone's local times (in a Berlin session
    01:30 UTC became 00:30, both being 02:30 there), and its zone rules pick the earlier of a
    repeated time's two moments and move a skipped time on by the jump's length."""
    from pyspark.sql import functions as F

    micros = F.unix_micros(wall_clock)
    if zone is None or zone.upper() in ("UTC", "ETC/UTC"):
        return F.timestamp_micros(micros)
    return F.timestamp_micros(_local_times_in(zone)(micros))


def _local_times_in(zone: str) -> Any:
    """A pandas UDF: local times of `zone` written as UTC's microseconds -> the moments'
    microseconds, by `readers.in_zone` (null where the time is two moments)."""
    from pyspark.sql.functions import pandas_udf

    from features.data.readers import in_zone

    @pandas_udf("long")  # type: ignore[call-overload]  # the stubs know only PandasUDFType
    def moments(micros: pd.Series) -> pd.Series:
        wall_clock = pd.to_datetime(micros.astype("Int64"), unit="us")
        return pd.Series(_micros(in_zone(wall_clock, zone)), index=micros.index)

    return moments


def read_lead_tables(
    spark: SparkSession, config: Any
) -> tuple[DataFrame, DataFrame | None, DataFrame | None]:
    """(leads, touchpoints or None, outcomes or None) of a `DataConfig` read by Spark: the same
    column mapping as the files path; excluded columns are dropped."""
    leads_source = config.leads
    lead_columns = {"lead_id": leads_source.lead_id, "created_at": leads_source.created_at}
    zone = config.timezone
    leads = read_table(
        spark, leads_source.path, "--leads", lead_columns, ("created_at",), zone=zone
    )
    dropped = [c for c in (*config.exclude, *([config.label] if config.label else [])) if c in leads.columns]  # fmt: skip
    leads = leads.drop(*dropped) if dropped else leads
    touchpoints = outcomes = None
    if config.touchpoints is not None and config.touchpoints.path is not None:
        t = config.touchpoints
        touchpoints = read_table(
            spark, t.path, "--touchpoints",
            {"lead_id": t.lead_id, "occurred_at": t.occurred_at, "channel": t.channel,
             "activity": t.activity, "campaign": t.campaign, "value": t.value},
            ("occurred_at",), required=("lead_id", "occurred_at", "channel", "activity"),
            zone=zone,
        )  # fmt: skip
    if config.outcomes is not None and config.outcomes.path is not None:
        o = config.outcomes
        outcomes = read_table(
            spark, o.path, "--outcomes",
            {"lead_id": o.lead_id, "closed_at": o.closed_at, "won": o.won, "amount": o.amount},
            ("closed_at",), required=("lead_id", "closed_at", "won"), zone=zone,
        )  # fmt: skip
    return leads, touchpoints, outcomes
