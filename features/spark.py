"""Features, training snapshots and batch scoring on Spark, with the same code as on one machine.

Spark only moves rows: leads are put in buckets by a hash of `lead_id`, each bucket's leads and
all their touchpoints (or outcomes) meet in one pandas call (`cogroup(...).applyInPandas`) of the
existing code, `LeadFeaturizer.transform` (the numpy core), `build_snapshots`, and scoring runs
`LeadScorer.score_frame` over batches of the pyfunc input (`mapInPandas`): leads, `as_of` and
their touchpoints as a JSON list, the frame `mlflow.pyfunc.spark_udf` takes too. A lead's row
depends only on that lead, so the rows are the pandas path's rows bit for bit (timestamps to the
microsecond: Spark's resolution).

Timestamps cross the boundary in the session time zone (Spark hands pandas naive local times);
every function here reads them back as UTC moments. pyspark is an optional dependency
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


def _session_zone(spark: SparkSession) -> str:
    return spark.conf.get("spark.sql.session.timeZone") or "UTC"


def _utc(frame: pd.DataFrame, columns: Iterable[str], zone: str) -> pd.DataFrame:
    """Spark's naive session-zone timestamps (or text) as UTC moments."""
    for column in columns:
        if column not in frame.columns:
            continue
        values = frame[column]
        if values.dtype.kind == "M" and not isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_localize(zone, ambiguous="raise", nonexistent="raise")
        frame[column] = pd.to_datetime(values, utc=True, format="ISO8601").dt.as_unit("ns")
    return frame


def _moment_attributes(featurizer: LeadFeaturizer) -> tuple[str, ...]:
    """The featurizer's date-time attributes other than created_at (a renewal date...)."""
    return tuple(
        spec["column"]
        for spec in featurizer.attributes_.columns_
        if spec["type"] == "datetime" and spec["column"] != "created_at"
    )


def _utc_attributes(frame: pd.DataFrame, columns: Iterable[str], zone: str) -> pd.DataFrame:
    """Date-time attributes Spark hands over as naive session-zone timestamps, as UTC moments
    (the featurizer reads naive ones as UTC); text and other values stay as they are, for the
    featurizer to read (an unreadable one is missing, as on the files path)."""
    for column in columns:
        if column in frame.columns:
            values = frame[column]
            if values.dtype.kind == "M" and not isinstance(values.dtype, pd.DatetimeTZDtype):
                frame[column] = values.dt.tz_localize(zone, ambiguous="raise", nonexistent="raise")
    return frame


def _for_spark(frame: pd.DataFrame) -> pd.DataFrame:
    """pandas 3's string columns as plain objects: PySpark 4.3's Arrow writer cannot take the
    chunked Arrow arrays they hold ("Cannot convert pyarrow.lib.ChunkedArray")."""
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.StringDtype):
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
    return frame


def _naive_local(values: pd.Series, zone: str) -> pd.Series:
    """UTC moments as the naive local times of the session's zone, which is how Spark reads a
    naive pandas timestamp back (a UTC session: the UTC times unchanged)."""
    moments = pd.to_datetime(values, utc=True)
    return moments.dt.tz_convert(zone).dt.tz_localize(None).dt.as_unit("us")


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
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType

    featurizer._check_fitted()
    if "lead_id" not in rows.columns:
        raise ValueError("the rows have no 'lead_id' column; name the lead id column lead_id")
    names = [str(n) for n in featurizer.get_feature_names_out()]
    keep_as_of = "as_of" in rows.columns
    fields = [StructField("lead_id", StringType(), False)]
    if keep_as_of:
        fields.append(StructField("as_of", TimestampType(), True))
    fields += [StructField(name, DoubleType(), True) for name in names]
    schema = StructType(fields)
    zone = _session_zone(spark)
    moments = _moment_attributes(featurizer)
    keys = partition_keys(spark, bucket_count(spark, rows, buckets))
    rows = with_bucket(rows, keys)

    def features_of_bucket(leads: pd.DataFrame, touches: pd.DataFrame) -> pd.DataFrame:
        leads = _utc(leads.drop(columns=[BUCKET]), ("created_at", "as_of"), zone)
        leads = _utc_attributes(leads, moments, zone)
        leads["lead_id"] = leads["lead_id"].astype(str)
        touches = _touchpoints_frame(touches, zone)
        X = featurizer.transform(leads, touches)
        out = pd.DataFrame(X, columns=pd.Index(names, dtype=object))
        out.insert(0, "lead_id", leads["lead_id"].to_numpy())
        if keep_as_of:
            out.insert(1, "as_of", _naive_local(leads["as_of"], zone).to_numpy())
        return _for_spark(out)

    if touchpoints is None or not featurizer.uses_touchpoints_:
        return rows.groupBy(BUCKET).applyInPandas(
            lambda leads: features_of_bucket(leads, pd.DataFrame()), schema
        )
    touchpoints = with_bucket(_touchpoint_columns(touchpoints), keys)
    return (
        rows.groupBy(BUCKET)
        .cogroup(touchpoints.groupBy(BUCKET))
        .applyInPandas(features_of_bucket, schema)
    )


def _touchpoint_columns(touchpoints: DataFrame) -> DataFrame:
    missing = [c for c in ("lead_id", "occurred_at", "channel", "activity") if c not in touchpoints.columns]  # fmt: skip
    if missing:
        raise ValueError(
            f"the touchpoints lack column(s) {missing}; expected lead_id, occurred_at, channel, "
            "activity and optionally campaign, value, received_at"
        )
    keep = [*TOUCHPOINT_COLUMNS, "received_at"]
    return touchpoints.select(*[c for c in keep if c in touchpoints.columns])


def _touchpoints_frame(touches: pd.DataFrame, zone: str) -> pd.DataFrame | None:
    if not len(touches):
        return None
    touches = _utc(touches.drop(columns=[BUCKET]), ("occurred_at", "received_at"), zone)
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
    from pyspark.sql.types import (
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    config = config if config is not None else FeatureConfig()
    moment = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    schema = StructType([
        StructField("lead_id", StringType(), False),
        StructField("created_at", TimestampType(), True),
        StructField("as_of", TimestampType(), True),
        StructField("snapshot_age_days", DoubleType(), True),
        StructField("label", LongType(), True),
    ])  # fmt: skip
    zone = _session_zone(spark)
    keys = partition_keys(spark, bucket_count(spark, leads, buckets))
    leads = with_bucket(leads.select("lead_id", "created_at"), keys)

    def snapshots_of_bucket(part: pd.DataFrame, closed: pd.DataFrame) -> pd.DataFrame:
        part = _utc(part.drop(columns=[BUCKET]), ("created_at",), zone)
        part["lead_id"] = part["lead_id"].astype(str)
        outcome_frame = None
        if len(closed):
            outcome_frame = _utc(closed.drop(columns=[BUCKET]), ("closed_at",), zone)
            outcome_frame["lead_id"] = outcome_frame["lead_id"].astype(str)
            # "yes"/"won"/1 read the one way the data contract reads them; unreadable: not won
            won, _ = to_boolean(outcome_frame["won"])
            outcome_frame["won"] = won.fillna(False).astype(bool)
        snapshots, _ = build_snapshots(part, outcome_frame, config, moment)
        out = snapshots[list(SNAPSHOT_COLUMNS)].copy()
        for column in ("created_at", "as_of"):
            out[column] = _naive_local(out[column], zone)
        return _for_spark(out)

    if outcomes is None:
        return leads.groupBy(BUCKET).applyInPandas(
            lambda part: snapshots_of_bucket(part, pd.DataFrame()), schema
        )
    outcomes = with_bucket(outcomes.select("lead_id", "closed_at", "won"), keys)
    return (
        leads.groupBy(BUCKET)
        .cogroup(outcomes.groupBy(BUCKET))
        .applyInPandas(snapshots_of_bucket, schema)
    )


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
    zone = _session_zone(spark)
    schema = ", ".join(f"`{name}` {kind}" for name, kind in score_columns(scorer))

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield score_batch(scorer, batch, policy, zone, explain)

    return frame.mapInPandas(score_batches, schema)


def score_batch(
    scorer: LeadScorer,
    batch: pd.DataFrame,
    policy: AppliedPolicy,
    zone: str = "UTC",
    explain: bool = True,
) -> pd.DataFrame:
    """One batch of the pyfunc input scored like `leadscore score` scores a file."""
    from features.model.artifact import frame_touchpoints
    from features.model.reasons import format_reasons

    columns = score_columns(scorer)
    if not len(batch):
        return pd.DataFrame(
            {name: pd.Series([], dtype=_SPARK_DTYPES.get(kind, object)) for name, kind in columns}
        )
    frame = _utc(batch.copy(), ("created_at", "as_of"), zone)
    frame = _utc_attributes(frame, _moment_attributes(scorer.featurizer), zone)
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
    absent optional column) and `timestamps` read as moments: ISO text is parsed, and text
    without an offset and timestamps without a zone are local times in `zone` (the config's
    `timezone`; UTC when unset), as the files path reads them."""
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
    session, local = _session_zone(spark), zone or "UTC"

    def in_zone(wall_clock: Any) -> Any:  # a zoneless wall-clock time in `local`, as a moment
        return F.convert_timezone(F.lit(local), F.lit(session), wall_clock).cast("timestamp")

    kinds = dict(frame.dtypes)
    for column in timestamps:
        if kinds.get(column) == "string":
            text = F.trim(F.col(column))
            with_offset = text.rlike(r"(?i)(z|[+-][0-9]{2}(:?[0-9]{2})?)$")
            moment = F.when(with_offset, F.to_timestamp(text)).otherwise(
                in_zone(F.to_timestamp_ntz(text))
            )
            frame = frame.withColumn(column, moment)
        elif kinds.get(column) == "timestamp_ntz":
            frame = frame.withColumn(column, in_zone(F.col(column)))
    return frame


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
