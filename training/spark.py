"""`leadscore train --engine spark` and `leadscore score --engine spark`: the same steps as on
one machine, with Spark reading the tables (Parquet, from any path Spark can read) and doing the
per-lead work in `features.spark`.

Training builds the snapshots on Spark, then learns from a seeded random sample of leads whose
examples fit in memory (the caps `max_training_rows` + `max_holdout_rows` of the training config,
the same caps the files path applies): the sample is written to local Parquet and read back by the
one loader (`load_lead_data`), so it is validated like any file, and `train()` runs unchanged.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.data.config import DataConfig, LeadsSource, OutcomesSource, TouchpointsSource
from features.model.scorer import LeadScorer
from features.policy.applied import AppliedPolicy
from training.train import RunConfig, Step, TrainResult, _noop, train

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass
class SparkSample:
    """How many examples Spark found, and the share of leads kept to train on."""

    leads: int
    examples: int
    fraction: float
    sampled_leads: int

    def to_text(self) -> str:
        if self.fraction >= 1:
            return f"Spark: {self.examples:,} examples from {self.leads:,} leads, all used"
        return (
            f"Spark: {self.examples:,} examples from {self.leads:,} leads; trained on a seeded "
            f"random {self.fraction:.2%} of the leads ({self.sampled_leads:,} leads), the "
            "examples that fit in memory"
        )


def sample_leads(
    spark: SparkSession, config: RunConfig, seed: int
) -> tuple[SparkSample, DataFrame, DataFrame | None, DataFrame | None]:
    """Count the examples on Spark (snapshots, or one per lead in flat mode) and sample the
    leads so the examples fit the training config's caps; the sampled leads' tables."""
    from features.spark import read_lead_tables, training_snapshots

    leads, touchpoints, outcomes = read_lead_tables(spark, config.data)
    n_leads = leads.count()
    if config.data.label or outcomes is None or "created_at" not in leads.columns:
        examples = n_leads
    else:
        now = config.training.now
        if now is None:  # the files path's default: the latest moment in any table
            now = latest_moment(leads, touchpoints, outcomes)
        examples = training_snapshots(spark, leads, outcomes, config.features, now).count()
    caps = (config.training.max_training_rows, config.training.max_holdout_rows)
    limit = None if None in caps else sum(c for c in caps if c is not None)
    fraction = 1.0 if limit is None or examples <= limit else limit / examples
    if fraction < 1:
        leads = leads.sample(fraction=fraction, seed=seed)
        kept = leads.select("lead_id")
        touchpoints = None if touchpoints is None else touchpoints.join(kept, "lead_id", "semi")
        outcomes = None if outcomes is None else outcomes.join(kept, "lead_id", "semi")
    sampled = leads.count() if fraction < 1 else n_leads
    return SparkSample(n_leads, examples, fraction, sampled), leads, touchpoints, outcomes


def latest_moment(
    leads: DataFrame, touchpoints: DataFrame | None, outcomes: DataFrame | None
) -> pd.Timestamp | None:
    """The files path's default `now` (`training.data.data_now`): the latest moment in any
    table (None when there is none). Collected as microseconds since the epoch: a timestamp
    collected as such is a naive local time of this process's zone, which read as UTC was
    two hours late on a Berlin machine in summer."""
    from pyspark.sql import functions as F

    micros = []
    for frame, column in ((leads, "created_at"), (touchpoints, "occurred_at"),
                          (outcomes, "closed_at")):  # fmt: skip
        if frame is not None and column in frame.columns:
            row = frame.agg(F.max(F.unix_micros(column))).first()
            if row is not None and row[0] is not None:
                micros.append(int(row[0]))
    return pd.Timestamp(max(micros), unit="us", tz="UTC") if micros else None


def write_sample(
    data: DataConfig,
    leads: DataFrame,
    touchpoints: DataFrame | None,
    outcomes: DataFrame | None,
    folder: Path,
) -> DataConfig:
    """The sampled tables as Parquet files in `folder` on this machine, and `data` pointed at
    them for the one loader (`load_lead_data`). Their timestamps are written as UTC moments
    (`to_pandas`), so the loader reads the moments Spark read, whatever the config's `timezone`
    (it reads naive times in it) and the session's zone (naive ones are its local times)."""
    from features.spark import to_pandas

    to_pandas(leads).to_parquet(folder / "leads.parquet", index=False)
    update: dict[str, Any] = {
        "leads": LeadsSource(
            path=folder / "leads.parquet",
            created_at="created_at" if "created_at" in leads.columns else None,
        )
    }
    if touchpoints is not None:
        to_pandas(touchpoints).to_parquet(folder / "touchpoints.parquet", index=False)
        update["touchpoints"] = TouchpointsSource(
            path=folder / "touchpoints.parquet",
            campaign="campaign" if "campaign" in touchpoints.columns else None,
            value="value" if "value" in touchpoints.columns else None,
        )
    if outcomes is not None:
        to_pandas(outcomes).to_parquet(folder / "outcomes.parquet", index=False)
        update["outcomes"] = OutcomesSource(
            path=folder / "outcomes.parquet",
            amount="amount" if "amount" in outcomes.columns else None,
        )
    return data.model_copy(update=update)


def train_on_spark(
    spark: SparkSession,
    config: RunConfig,
    experiment: str | None = None,
    model_name: str | None = None,
    seed: int = 42,
    step: Step = _noop,
) -> tuple[TrainResult, SparkSample]:
    """Examples on Spark, then `train()` on the sample that fits in memory."""
    step("counting the examples on Spark")
    sample, leads, touchpoints, outcomes = sample_leads(spark, config, seed)
    step(sample.to_text())
    with tempfile.TemporaryDirectory(prefix="leadscore-spark-") as folder:
        data = write_sample(config.data, leads, touchpoints, outcomes, Path(folder))
        local = RunConfig(data, config.features, config.training, config.policy)
        kwargs: dict[str, Any] = {"model_name": model_name} if model_name else {}
        result = train(local, experiment=experiment, seed=seed, step=step, **kwargs)
    return result, sample


def score_on_spark(
    spark: SparkSession,
    scorer: LeadScorer,
    data_config: Any,
    policy: AppliedPolicy,
    out: str,
    as_of: str | None = None,
) -> dict[str, int]:
    """Score the leads of `data_config` with Spark and write them to `out` (a Parquet folder,
    or CSV with a header when `out` ends in .csv); the count of each decision."""
    from features.spark import read_lead_tables, score_leads, spark_path

    leads, touchpoints, _ = read_lead_tables(spark, data_config)
    scored = score_leads(spark, leads, touchpoints, scorer, policy, as_of=as_of).cache()
    target = spark_path(out)
    writer = scored.write.mode("overwrite")
    if target.lower().endswith(".csv"):
        writer.option("header", True).csv(target)
    else:
        writer.parquet(target)
    counts = {
        row["decision"]: int(row["count"]) for row in scored.groupBy("decision").count().collect()
    }
    scored.unpersist()
    return counts


def pyfunc_udf_probabilities(
    spark: SparkSession,
    leads: DataFrame,
    touchpoints: DataFrame | None,
    model_uri: str,
    as_of: str | None = None,
) -> DataFrame:
    """`lead_id`, `probability` from the logged model run by `mlflow.pyfunc.spark_udf` (its own
    policy; the probability is the pyfunc output's first column): for jobs that want the
    model exactly as logged. `score_leads` is the project's scorer with the policy in force."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    from features.spark import JSON_TIMESTAMP, pyfunc_input

    frame = pyfunc_input(leads, touchpoints, as_of)
    # the model's signature: numbers (and yes/no) as doubles, everything else as text
    for name, kind in frame.dtypes:
        if kind == "timestamp":
            frame = frame.withColumn(name, F.date_format(F.col(name), JSON_TIMESTAMP))
        elif kind in ("boolean", "int", "bigint", "float", "smallint", "tinyint"):
            frame = frame.withColumn(name, F.col(name).cast("double"))
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double", env_manager="local")
    columns = [F.col(f"`{c}`") for c in frame.columns]
    return frame.select("lead_id", udf(F.struct(*columns)).alias("probability"))
